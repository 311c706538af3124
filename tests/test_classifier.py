"""Classifier training: builders, refused resumes, and the saved bundle in the app (exact resume:
test_resume.py)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.services.classify import Classifier
from tests.conftest import class_folders
from training.classifier.classify import run_classify
from training.classifier.config import ClassifierConfig, ClassifyOptions
from training.classifier.trainer import build_classifier, class_weights
from training.cli import build_parser, main
from training.options import parse

TINY = ClassifierConfig(height=24, width=24, width_multiplier=0.25, epochs=3, batch_size=8, patience=5)


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


# The longest test of the default run (a third of a minute to a minute and a half on a 2-core
# machine): CI runs it with the other slow ones.
@pytest.mark.slow
def test_classify_writes_a_bundle_the_app_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=12, size=40)
    out = tmp_path / "model"
    args = build_parser().parse_args([
        "classify", "--data", str(root), "--out", str(out), "--modality", "oct", "--size", "24",
        "--width-multiplier", "0.25", "--epochs", "2", "--batch-size", "8", "--seed", "1",
    ])
    assert run_classify(parse(ClassifyOptions, args)).model_path == out / "keras_model.h5"
    for name in ("keras_model.h5", "labels.txt", "keras_model.json", "splits.csv", "evaluation/metrics.json"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "keras_model.json").read_text())
    assert sidecar["modality"] == "oct" and sidecar["classes"] == ["dme", "normal"]
    assert sidecar["provenance"]["command"].startswith("python -m training ")
    assert "accuracy" in sidecar["metrics"] and sidecar["temperature"] > 0
    # The unfamiliar-image flag is fitted at the end of training and stored with the model.
    assert (out / "keras_model.familiarity.npz").exists() and sidecar["familiarity"]["threshold"] > 0
    # The app, loading the files, gives the trained network's own predictions.
    classifier = Classifier(out / "keras_model.h5")
    image = root / "dme" / "000_a.png"
    from retina_desktop.imaging.decode import load_image
    from retina_desktop.imaging.preprocessing import fit_image

    fitted = fit_image(load_image(image).rgb, classifier.bundle().metadata.input)
    ours = classifier.predict_arrays(fitted[None], calibrated=False)
    theirs = classifier.bundle().model.predict(fitted[None].astype("float32"), verbose=0)
    assert np.allclose(ours, theirs, atol=1e-5)
    assert classifier.predict_file(image).label in ("dme", "normal")


def test_cli_requires_data_and_out():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["classify", "--data", "x"])
    assert isinstance(build_parser().parse_args(["evaluate", "--model", "m", "--data", "d"]), argparse.Namespace)


def _checkpoint_of(out, data, **state) -> None:
    """A checkpoint after epoch 1 on `data`, as far as a refused resume reads it."""
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "epoch-0001.weights.h5").write_bytes(b"")
    (out / "checkpoint" / "state.json").write_text(json.dumps(
        {"epoch": 1, "weights": "epoch-0001.weights.h5", "data": str(data)} | state))
    (out / "config.json").write_text(json.dumps(ClassifierConfig(height=24, width=24, epochs=2).to_dict()))


class _ReachedTheData(Exception):
    pass


@pytest.mark.parametrize("changed", [["--learning-rate", "5e-4"], ["--size", "32"], ["--no-augment"]])
def test_resume_with_other_options_is_refused_before_the_data_is_read(tmp_path, monkeypatch, capsys, changed):
    import training.classifier.classify

    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=2, size=24)
    out = tmp_path / "model"
    _checkpoint_of(out, root.resolve())
    saved = (out / "config.json").read_text()

    def reached(*args, **kwargs):
        raise _ReachedTheData

    monkeypatch.setattr(training.classifier.classify, "load_dataset", reached)
    options = ["classify", "--data", str(root), "--out", str(out), "--size", "24", "--epochs", "2", "--resume"]
    assert main(options + changed) == 1
    error = capsys.readouterr().err
    assert str(out / "config.json") in error and "only --epochs and --patience may change" in error
    assert error.count("\n") == 1
    assert (out / "config.json").read_text() == saved
    # More epochs and another patience are what a resume may change.
    with pytest.raises(_ReachedTheData):
        main(options + ["--epochs", "6", "--patience", "3"])


def test_resume_on_another_data_folder_is_refused_before_it_is_read(tmp_path, monkeypatch, capsys):
    # Issue #34 item 15: --resume with another --data trained on the new images silently.
    import training.classifier.classify

    first = class_folders(tmp_path / "first", ["dme", "normal"], per_class=2, size=24)
    other = class_folders(tmp_path / "other", ["dme", "normal"], per_class=2, size=24)
    out = tmp_path / "model"
    _checkpoint_of(out, first.resolve())

    def reached(*args, **kwargs):
        raise _ReachedTheData

    monkeypatch.setattr(training.classifier.classify, "load_dataset", reached)
    options = ["classify", "--out", str(out), "--size", "24", "--epochs", "2", "--resume"]
    assert main(options + ["--data", str(other)]) == 1
    error = capsys.readouterr().err
    assert str(first.resolve()) in error and str(other.resolve()) in error and error.count("\n") == 1
    # The same folder, however it is spelled, resumes.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(_ReachedTheData):
        main(options + ["--data", "first/../first"])


def test_resume_from_a_truncated_state_is_refused_before_the_data_is_read(tmp_path, monkeypatch, capsys):
    # Issue #34 item 16, at the command: one line naming state.json, before minutes of loading.
    import training.classifier.classify

    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=2, size=24)
    out = tmp_path / "model"
    _checkpoint_of(out, root.resolve())
    state_file = out / "checkpoint" / "state.json"
    state_file.write_text(state_file.read_text()[:20])
    monkeypatch.setattr(training.classifier.classify, "load_dataset", lambda *a, **k: pytest.fail("data read"))
    options = ["classify", "--data", str(root), "--out", str(out), "--size", "24", "--epochs", "2", "--resume"]
    assert main(options) == 1
    error = capsys.readouterr().err
    assert str(state_file) in error and "without --resume" in error and error.count("\n") == 1
