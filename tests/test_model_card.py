"""Model cards are rendered from the sidecar's measured figures, never typed by hand."""

from __future__ import annotations

import pytest

from retina_desktop.errors import UserError
from retina_desktop.model_files import write_sidecar
from retina_desktop.records import InputSpec, ModelMetadata
from training.model_card import render_card


def test_card_carries_the_sidecar_figures(tmp_path):
    model = tmp_path / "keras_model.h5"
    metrics = {"split": "test", "n": 10, "accuracy": 0.9, "accuracy_ci": [0.8, 0.97], "balanced_accuracy": 0.85,
               "macro_auc": 0.93, "macro_f1": 0.8, "ece": 0.03, "ece_uncalibrated": 0.07,
               "per_class": {"a": {"n": 5, "sensitivity": 0.8, "sensitivity_ci": [0.5, 1.0]}},
               "confusion_matrix": [[4, 1], [0, 5]]}
    checks = {"thresholds": {"min_side": 128}, "report": {
        "fitted_on": "val", "real_test_flagged": 0.02, "real_test_n": 50, "non_retinal_flagged": 0.99,
        "non_retinal_n": 100, "real_test_reasons": {"too dark to judge": 1}, "ms_per_image": 2.0}}
    write_sidecar(model.with_suffix(".json"), ModelMetadata(
        classes=["a", "b"], input=InputSpec(32, 32, "crop", "none"), modality="fundus", name="m",
        provenance={"command": "python -m training classify --data X", "data": "X"}, metrics=metrics, checks=checks))
    card = render_card(model, "teaching", ["small data"])
    assert "not a medical device" in card.lower()
    assert "| accuracy | 0.900 [0.800, 0.970] |" in card
    assert "python -m training classify --data X" in card
    assert "| real test images of this model's data (should pass) | 50 | 2.0% |" in card
    assert "- small data" in card


def test_a_model_without_sidecar_has_no_card(tmp_path):
    with pytest.raises(UserError, match="no sidecar"):
        render_card(tmp_path / "keras_model.h5", "x", [])
