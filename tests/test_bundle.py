"""Model bundles: labels, sidecars, unsafe layers, and every way a model file can be wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.errors import ModelError, UnsafeModelError
from retina_desktop.core.quiet import import_keras
from retina_desktop.inference.bundle import load_bundle
from retina_desktop.inference.model_files import find_code_layers, read_labels, write_labels
from tests.conftest import CLASSES


def test_labels_in_teachable_machine_format(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("0 Normal\n1 Diabetic retinopathy\n\n")
    assert read_labels(path) == ["Normal", "Diabetic retinopathy"]


def test_plain_labels_and_round_trip(tmp_path):
    path = tmp_path / "labels.txt"
    write_labels(path, ["a", "b c"])
    assert path.read_text() == "0 a\n1 b c\n"
    assert read_labels(path) == ["a", "b c"]
    path.write_text("x\ny\n")
    assert read_labels(path) == ["x", "y"]


@pytest.mark.parametrize(
    "text, message",
    [("", "is empty"), ("0 a\n2 b\n", "numbered 2, expected 1"), ("0 a\n1 a\n", "names a class twice")],
)
def test_bad_labels(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(ModelError, match=message):
        read_labels(path)


def test_bundle_loads_with_sidecar(small_bundle):
    bundle = load_bundle(small_bundle)
    assert bundle.classes == CLASSES
    assert bundle.metadata.modality == "fundus"
    assert (bundle.metadata.input.height, bundle.metadata.input.scaling) == (48, "none")


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="Model file not found.*nope.h5"):
        load_bundle(tmp_path / "nope.h5")


def test_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "keras_model.h5"
    path.write_bytes(b"\x89PNG not really a model")
    with pytest.raises(ModelError, match="keras_model.h5.*not a valid HDF5"):
        load_bundle(path)


def test_foreign_extension(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match="not a Keras model file"):
        load_bundle(path)


def test_labels_that_do_not_match_the_output(small_bundle, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_bundle.parent, folder)
    (folder / "keras_model.json").unlink()
    write_labels(folder / "labels.txt", ["one", "two", "three"])
    with pytest.raises(ModelError, match=r"outputs 4 class probabilities but .*labels.txt.* lists 3"):
        load_bundle(folder / "keras_model.h5")


def test_labels_that_contradict_the_sidecar(small_bundle, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_bundle.parent, folder)
    write_labels(folder / "labels.txt", ["w", "x", "y", "z"])
    with pytest.raises(ModelError, match="sidecar"):
        load_bundle(folder / "keras_model.h5")


def test_missing_labels_without_sidecar(small_bundle, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(small_bundle, folder / "keras_model.h5")
    with pytest.raises(ModelError, match="Labels file not found"):
        load_bundle(folder / "keras_model.h5")


def test_without_sidecar_teachable_machine_defaults_apply(small_bundle, tmp_path):
    folder = tmp_path / "tm"
    folder.mkdir()
    shutil.copy(small_bundle, folder / "keras_model.h5")
    shutil.copy(small_bundle.parent / "labels.txt", folder / "labels.txt")
    bundle = load_bundle(folder / "keras_model.h5")
    assert (bundle.metadata.input.fit, bundle.metadata.input.scaling) == ("crop", "tm")


def _lambda_model(tmp_path, suffix):
    keras = import_keras()
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="sneaky")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    path = tmp_path / f"model{suffix}"
    keras.Model(inputs, outputs).save(path)
    write_labels(tmp_path / "labels.txt", ["a", "b"])
    return path


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layers_are_refused_unless_trusted(tmp_path, suffix):
    path = _lambda_model(tmp_path, suffix)
    with pytest.raises(UnsafeModelError, match=r"sneaky \(Lambda\).*--trust-model"):
        load_bundle(path)
    bundle = load_bundle(path, trust_model=True)
    assert bundle.model.predict(np.zeros((1, 8, 8, 3)), verbose=0).shape == (1, 2)


def test_code_layer_scan_walks_nested_configs():
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"name": "d"}},
        {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "deep"}}]}},
    ]}}
    assert find_code_layers(config) == ["deep (Lambda)"]


def _bundle_with_sidecar(small_bundle, tmp_path, edit) -> Path:
    """A copy of the test bundle whose sidecar JSON has been changed by `edit(dict)`."""
    folder = tmp_path / "m"
    shutil.copytree(small_bundle.parent, folder)
    sidecar = folder / "keras_model.json"
    data = json.loads(sidecar.read_text())
    data = edit(data) or data
    sidecar.write_text(json.dumps(data))
    return folder / "keras_model.h5"


@pytest.mark.parametrize("temperature", [0, 0.0, -1.5])
def test_a_temperature_of_zero_or_below_is_refused_at_load(small_bundle, tmp_path, temperature):
    path = _bundle_with_sidecar(small_bundle, tmp_path, lambda d: d.update(temperature=temperature))
    expected = r'keras_model.json" is not valid: "temperature" must be a number above 0'
    with pytest.raises(ModelError, match=expected) as caught:
        load_bundle(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d.update(temperature="hot"), "temperature"),
        (lambda d: d.update(temperature=True), "temperature"),
        (lambda d: d.update(metrics=[1]), "metrics"),
        (lambda d: d.update(provenance="me"), "provenance"),
        (lambda d: d.update(checks={"thresholds": {"min_brightness": "dark"}}), "checks.thresholds.min_brightness"),
        (lambda d: d.update(checks={"thresholds": [1]}), "checks.thresholds"),
        (lambda d: d.update(checks=[]), "checks"),
        (lambda d: d.update(decision={"positive_class": "normal", "threshold": "dark"}), "decision.threshold"),
        (lambda d: d.update(decision={"positive_class": "normal", "threshold": 1.5}), "decision.threshold"),
        (lambda d: d.update(decision={"positive_class": 3, "threshold": 0.5}), "decision.positive_class"),
        (lambda d: d.update(input=[48, 48]), "input"),
        (lambda d: d.update(input={"height": "48", "width": 48}), "input.height"),
        (lambda d: d.update(input={"height": 48, "width": 48, "fit": "zoom"}), "input.fit"),
        (lambda d: d.update(input={"height": 48, "width": 48, "extra": 1}), "input.extra"),
        (lambda d: d.update(classes="abcd"), "classes"),
        (lambda d: d.update(classes=[["a"], "b", "c", "d"]), "classes"),
        (lambda d: d.update(modality=4), "modality"),
        (lambda d: d.update(name=None), "name"),
        (lambda d: [d], "a list"),
        (lambda d: "sidecar", "a string"),
    ],
)
def test_wrong_typed_sidecar_values_are_refused_at_load_naming_the_key(small_bundle, tmp_path, edit, key):
    path = _bundle_with_sidecar(small_bundle, tmp_path, edit)
    with pytest.raises(ModelError, match=r'keras_model.json" is not valid: ') as caught:
        load_bundle(path)
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_the_shipped_sidecars_are_valid():
    from retina_desktop.inference.model_files import read_sidecar
    from tests.conftest import ROOT

    for sidecar in sorted((ROOT / "models").rglob("keras_model.json")):
        assert read_sidecar(sidecar) is not None


def test_a_million_line_labels_file_is_refused_briefly(tmp_path):
    import time

    path = tmp_path / "labels.txt"
    path.write_text("".join(f"{i} class number {i}\n" for i in range(1_000_000)))
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r'labels.txt" is too large') as caught:
        read_labels(path)
    assert time.perf_counter() - started < 1.0
    assert len(str(caught.value)) < 300 and "class number" not in str(caught.value)


def test_a_labels_file_with_too_many_classes_names_the_count(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("".join(f"{i} c{i}\n" for i in range(5000)))
    with pytest.raises(ModelError, match=r'labels.txt" lists 5000 classes') as caught:
        read_labels(path)
    assert "c4999" not in str(caught.value)


def test_labels_that_do_not_match_the_output_are_not_all_listed(small_bundle, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_bundle.parent, folder)
    (folder / "keras_model.json").unlink()
    write_labels(folder / "labels.txt", [f"class{i}" for i in range(900)])
    with pytest.raises(ModelError, match=r"outputs 4 class probabilities but .*lists 900") as caught:
        load_bundle(folder / "keras_model.h5")
    assert len(str(caught.value)) < 600


def test_a_labels_path_given_that_does_not_exist_is_refused(small_bundle, tmp_path):
    missing = tmp_path / "my_labels.txt"
    with pytest.raises(ModelError, match=r'Labels file not found: ".*my_labels.txt"'):
        load_bundle(small_bundle, missing)


def test_a_model_shipped_as_its_compiled_copy_alone_runs_on_it(small_bundle, tmp_path, monkeypatch):
    """The packaged app ships compiled copies without the model files they came from: the copy
    is used when its bytes are those its manifest recorded, and refused when they changed. From
    a checkout, such a copy is not used at all (nothing ties it to the sidecar beside it)."""
    import sys

    from retina_desktop.inference.litert_backend import compiled_path_for, litert_available
    from retina_desktop.inference.litert_export import compile_model

    if not litert_available():
        pytest.skip("the LiteRT runtime (ai-edge-litert) is not installed")
    folder = tmp_path / "shipped"
    shutil.copytree(small_bundle.parent, folder)
    model = folder / "keras_model.h5"
    keras_bundle = load_bundle(model)
    compile_model(keras_bundle.model, model, compiled_path_for(model), scaling=keras_bundle.metadata.input.scaling)
    expected = keras_bundle.runtime.predict(np.zeros((1, 48, 48, 3), np.float32))
    model.unlink()
    with pytest.raises(ModelError, match="Model file not found"):
        load_bundle(model, backend="auto")  # from a checkout
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # as in the packaged app
    shipped = load_bundle(model, backend="auto")
    assert shipped.backend == "litert" and shipped.classes == keras_bundle.classes
    assert np.allclose(shipped.runtime.predict(np.zeros((1, 48, 48, 3), np.float32)), expected, atol=1e-4)
    compiled = compiled_path_for(model)
    compiled.write_bytes(compiled.read_bytes()[:-8] + b"\0" * 8)  # changed after compiling
    with pytest.raises(ModelError, match="its compiled copy cannot be used .*bytes changed"):
        load_bundle(model, backend="auto")
