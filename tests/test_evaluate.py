"""Evaluation figures on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.calibration import apply_temperature
from training.evaluate import (
    binary_operating_point,
    compute_metrics,
    expected_calibration_error,
    fit_temperature,
)


def test_perfect_predictions():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    metrics = compute_metrics(probs, labels, ["a", "b", "c"], n_bootstrap=50)
    assert metrics["accuracy"] == 1 and metrics["balanced_accuracy"] == 1 and metrics["macro_auc"] == 1
    assert metrics["per_class"]["b"]["sensitivity"] == 1 and metrics["per_class"]["b"]["specificity"] == 1
    assert metrics["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert metrics["accuracy_ci"] == [1.0, 1.0]


def test_known_confusion():
    # 4 of class 0 (one called 1), 2 of class 1 (both right).
    labels = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 1])
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    metrics = compute_metrics(probs, labels, ["neg", "pos"], n_bootstrap=200)
    assert metrics["accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    assert metrics["balanced_accuracy"] == pytest.approx((3 / 4 + 1) / 2, abs=1e-4)
    pos = metrics["per_class"]["pos"]
    assert pos["sensitivity"] == 1 and pos["specificity"] == 0.75
    assert pos["precision"] == pytest.approx(2 / 3, abs=1e-4)
    low, high = metrics["accuracy_ci"]
    assert low < metrics["accuracy"] <= high


def test_ece_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=20000) < confidence
    labels = np.where(correct, 0, 1)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    assert expected_calibration_error(probs, labels) < 0.02
    overconfident = np.stack([np.full(20000, 0.99), np.full(20000, 0.01)], axis=1)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.99 - correct.mean(), abs=0.01)


def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (5000, 3))
    true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true_probs])
    sharpened = apply_temperature(true_probs, 1 / 2.5)  # a model 2.5x too confident
    assert fit_temperature(sharpened, labels) == pytest.approx(2.5, rel=0.1)


def test_operating_point_at_specificity():
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.concatenate([np.linspace(0, 0.5, 10), np.linspace(0.45, 1, 10)])
    probs = np.stack([1 - scores, scores], axis=1)
    point = binary_operating_point(probs, labels, positive=1, min_specificity=0.9)
    assert point["specificity"] >= 0.9 and point["sensitivity"] == 1.0


def test_sensitivity_by_source_splits_a_class_by_where_its_files_came_from():
    from training.evaluate import parse_sources, sensitivity_by_source

    files = ["g/1_left.jpg", "g/2_right.jpg", "g/Glaucoma_3.png", "g/Glaucoma_4.png", "n/5_left.jpg", "n/x.bmp"]
    labels = np.array([0, 0, 0, 0, 1, 1])
    # ODIR misses one of its two glaucoma images; the small set finds both of its own.
    predicted = np.array([1, 0, 0, 0, 1, 1])
    sources = parse_sources([r"ODIR=/\d+_(left|right)\.jpg$", "small set=Glaucoma_"])
    table = sensitivity_by_source(np.eye(2)[predicted], labels, files, ["glaucoma", "normal"], sources)
    assert table["ODIR"]["glaucoma"] == {"n": 2, "found": 1, "sensitivity": 0.5}
    assert table["small set"]["glaucoma"] == {"n": 2, "found": 2, "sensitivity": 1.0}
    assert table["ODIR"]["normal"]["n"] == 1 and table["other"]["normal"]["n"] == 1
    assert "normal" not in table["small set"]


@pytest.mark.parametrize("bad", ["no-equals-sign", "=pattern", "x=("])
def test_a_bad_source_option_is_a_clear_error(bad):
    from retina_desktop.errors import UserError
    from training.evaluate import parse_sources

    with pytest.raises(UserError, match="--source"):
        parse_sources([bad])
