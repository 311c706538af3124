"""Classifier training: builders, resume after interruption, and the saved bundle in the app."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from retina_desktop.augmentation import default_config
from retina_desktop.errors import UserError
from retina_desktop.service import Classifier
from training.classifier import ClassifierConfig, build_classifier, class_weights, train_classifier
from training.cli import build_parser
from training.classify import run_classify
from tests.conftest import class_folders

TINY = ClassifierConfig(height=24, width=24, width_multiplier=0.25, epochs=3, batch_size=8, patience=5)


def _arrays(n=24, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 24, 24, 3)).astype(np.uint8)
    images[labels == 1, 6:18, 6:18] += 150  # class 1 has a bright centre
    return images, labels.astype(np.int32)


def test_builder_outputs_probabilities_with_a_named_last_conv():
    model = build_classifier(TINY, 3)
    assert model.get_layer("last_conv").output.shape[-1] > 0
    out = model.predict(np.zeros((2, 24, 24, 3), "float32"), verbose=0)
    assert out.shape == (2, 3) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_transfer_backbone_without_weights_says_so():
    with pytest.raises(UserError, match="--weights PATH"):
        build_classifier(ClassifierConfig(architecture="mobilenetv2", height=32, width=32), 2)
    with pytest.raises(UserError, match="Weights file not found"):
        build_classifier(ClassifierConfig(architecture="vgg16", weights="/nope.h5", height=32, width=32), 2)


def test_class_weights_balance_the_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights[0] * 3 == pytest.approx(weights[1] * 1)


def test_resume_after_interruption_reaches_the_same_weights(tmp_path):
    train, val = _arrays(24, 0), _arrays(8, 1)
    augment = default_config("fundus")
    straight, _ = train_classifier(TINY, train, val, 2, tmp_path / "a", augment, log=lambda *_: None)
    train_classifier(TINY, train, val, 2, tmp_path / "b", augment, stop_after_epochs=1, log=lambda *_: None)
    state = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 1
    resumed, state = train_classifier(TINY, train, val, 2, tmp_path / "b", augment, resume=True, log=lambda *_: None)
    assert state.epoch == 3
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert np.allclose(a, b, atol=1e-6)


def test_classify_writes_a_bundle_the_app_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=12, size=40)
    out = tmp_path / "model"
    args = build_parser().parse_args([
        "classify", "--data", str(root), "--out", str(out), "--modality", "oct", "--size", "24",
        "--width-multiplier", "0.25", "--epochs", "2", "--batch-size", "8", "--seed", "1",
    ])
    assert run_classify(args) == 0
    for name in ("keras_model.h5", "labels.txt", "keras_model.json", "splits.csv", "evaluation/metrics.json"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "keras_model.json").read_text())
    assert sidecar["modality"] == "oct" and sidecar["classes"] == ["dme", "normal"]
    assert sidecar["provenance"]["command"].startswith("python -m training ")
    assert "accuracy" in sidecar["metrics"] and sidecar["temperature"] > 0
    # The app, loading the files, gives the trained network's own predictions.
    classifier = Classifier(out / "keras_model.h5")
    image = root / "dme" / "000_a.png"
    from retina_desktop.imaging import load_image
    from retina_desktop.preprocessing import fit_image

    fitted = fit_image(load_image(image).rgb, classifier.bundle().metadata.input)
    ours = classifier.predict_arrays(fitted[None], calibrated=False)
    theirs = classifier.bundle().model.predict(fitted[None].astype("float32"), verbose=0)
    assert np.allclose(ours, theirs, atol=1e-5)
    assert classifier.predict_file(image).label in ("dme", "normal")


def test_cli_requires_data_and_out():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["classify", "--data", "x"])
    assert isinstance(build_parser().parse_args(["evaluate", "--model", "m", "--data", "d"]), argparse.Namespace)
