"""The screening model (`screening-probe`): a grade-weighted head on frozen pooled features,
chosen on val, folded into one Keras model the app loads, with a referral threshold in its sidecar
that every output applies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fundus_like
from training.cli import build_parser
from training.experiments.screening_head import HeadChoice, fit_head, grade_weights

CLASSES = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]
TINTS = {"cataract": (60, 160, 200), "diabetic_retinopathy": (200, 60, 40), "glaucoma": (200, 140, 40),
         "normal": (150, 150, 60)}


def _graded_data(root: Path, per_class: int = 12, size: int = 40) -> Path:
    """Four tinted classes; DR eyes graded 1-3 (redder with grade), normal eyes grade 0; each
    split holds every class and both referable and non-referable eyes."""
    rows = ["file,label,group,split,source,grade"]
    for c, (label, tint) in enumerate(TINTS.items()):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            split = "train" if i < per_class // 2 else ("val" if i % 2 else "test")
            grade = {"diabetic_retinopathy": 1 + i % 3, "normal": 0}.get(label, "")
            shade = (min(255, tint[0] + 15 * (grade or 0)), tint[1], tint[2])
            name = f"{label}/{c}{i:02d}_a.png"
            fundus_like(size, seed=i + 100 * c, tint=shade).save(root / name)
            rows.append(f"{name},{label},{c}-{i},{split},{'cam' if i % 2 else 'other'},{grade}")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


def test_grade_weights_count_referable_eyes_more_and_mild_ones_less():
    labels = np.array([1, 1, 1, 3, 3, 0])
    grades = np.array([3, 1, -1, 0, 0, -1])
    plain = grade_weights(labels, grades, 1, HeadChoice())
    weighted = grade_weights(labels, grades, 1, HeadChoice(referable_weight=3, mild_weight=0.25))
    assert np.allclose(weighted / plain, [3, 0.25, 1, 1, 1, 1])


def test_the_training_prior_moves_probability_from_scarce_classes_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [10, 10, 80])
    x = rng.normal(size=(100, 6)) + np.eye(3, 6)[labels] * 1.5
    grades = np.full(100, -1)
    balanced = fit_head(x, labels, grades, None, HeadChoice(C=1.0, prior="balanced"))
    natural = fit_head(x, labels, grades, None, HeadChoice(C=1.0, prior="train"))
    pb, pn = balanced.probabilities(x), natural.probabilities(x)
    assert pn[:, 2].mean() > pb[:, 2].mean() and pn[:, 0].mean() < pb[:, 0].mean()
    assert np.array_equal(np.argsort(pb[:, 0]), np.argsort(pn[:, 0] / pn[:, 2] * pb[:, 2] / pb[:, 0] * pb[:, 0]))
    kernel, bias = natural.dense_weights()
    logits = x @ kernel.astype(np.float64) + bias
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    assert np.allclose(softmax / softmax.sum(1, keepdims=True), pn, atol=1e-5)


def test_a_two_class_head_is_the_regressions_sigmoid_and_one_dense_layer_gives_it():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], [20, 80])  # DME / no DME: an OCT head has two classes
    x = rng.normal(size=(100, 5)) + np.eye(2, 5)[labels] * 2.0
    head = fit_head(x, labels, np.full(100, -1), None, HeadChoice(C=1.0, prior="balanced"))
    probs = head.probabilities(x)
    expected = head.regression.predict_proba((x - head.mean) / head.scale)
    assert probs.shape == (100, 2) and np.allclose(probs, expected, atol=1e-9)
    kernel, bias = fit_head(x, labels, np.full(100, -1), None, HeadChoice(C=1.0)).dense_weights()
    logits = x @ kernel.astype(np.float64) + bias
    assert kernel.shape == (5, 2) and np.allclose(np.exp(logits[:, 0]) / np.exp(logits).sum(1),
                                                  fit_head(x, labels, np.full(100, -1), None,
                                                           HeadChoice(C=1.0)).probabilities(x)[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="two or more classes"):
        fit_head(x, np.zeros(100, int), np.full(100, -1), None, HeadChoice())


def test_cli_knows_the_verb_and_its_defaults():
    args = build_parser().parse_args(["screening-probe", "--data", "d", "--out", "o"])
    assert (args.architecture, args.size, args.fit) == ("efficientnet-lite0", 224, "fov")


def test_the_screening_bundle_refers_by_its_threshold_in_the_app(tmp_path):
    from retina_desktop.core.errors import UserError
    from retina_desktop.services.classify import Classifier
    from training.classifier.import_weights import imagenet_weights
    from training.experiments.screening import ScreeningConfig, run_screening

    try:
        imagenet_weights("efficientnet-lite0")
    except UserError as err:
        pytest.skip(str(err))
    root = _graded_data(tmp_path / "data")
    out = tmp_path / "screen"
    config = ScreeningConfig(size=32, c_grid=(0.1, 1.0), grade_weightings=((1.0, 1.0), (3.0, 0.25)))
    model_path = run_screening(root, out, config, cache=tmp_path / "cache", n_bootstrap=5, log=lambda *_: None)
    search = json.loads((out / "search.json").read_text())
    assert len(search["trials"]) == 3 and search["chosen"]["C"] in (0.1, 1.0)
    sidecar = json.loads((out / "keras_model.json").read_text())
    decision = sidecar["decision"]
    assert decision["rule"] == "referral" and decision["positive_class"] == "diabetic_retinopathy"
    assert 0 <= decision["threshold"] <= 1 and "referable DR sensitivity >= 0.9" in decision["chosen_on"]
    assert "referable_dr" in sidecar["metrics"] and "healthy_called" in sidecar["metrics"]
    assert sidecar["metrics"]["per_source"]["other"].get("healthy_called") is not None
    # The app applies the threshold: a test eye whose p(DR) reaches it is answered "refer".
    classifier = Classifier(model_path)
    for file in sorted((root / "diabetic_retinopathy").glob("*.png"))[-4:]:
        prediction = classifier.predict_file(file)
        answer = prediction.answer()
        p_dr = prediction.probabilities["diabetic_retinopathy"]
        if answer.not_judged:
            continue
        assert (answer.label == "diabetic_retinopathy") == (p_dr >= decision["threshold"])
        assert ("refer (" in answer.text()) == (p_dr >= decision["threshold"])
    # The cached features are reused: a second run computes none.
    cached = sorted((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 3
    stamps = [p.stat().st_mtime_ns for p in cached]
    run_screening(root, tmp_path / "again", config, cache=tmp_path / "cache", n_bootstrap=5, log=lambda *_: None)
    assert [p.stat().st_mtime_ns for p in cached] == stamps


def test_cached_features_are_keyed_by_the_weights_they_came_from(tmp_path):
    """Features of a WiSE-FT or fine-tuned backbone must never be read back for ImageNet's or
    for another file's: the cache key names the weights by their contents."""
    from training.experiments.screening_features import Backbone

    first, second = tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"
    first.write_bytes(b"one")
    second.write_bytes(b"two")
    tags = {Backbone().tag(), Backbone(weights=str(first)).tag(), Backbone(weights=str(second)).tag()}
    assert len(tags) == 3
    assert Backbone().tag() == "efficientnet-lite0-224px-fov"  # ImageNet's caches stay valid
    second.write_bytes(b"one")
    assert Backbone(weights=str(second)).tag().endswith(Backbone(weights=str(first)).tag().rsplit("-", 1)[1])
