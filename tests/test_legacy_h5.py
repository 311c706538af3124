"""Tests for retina_desktop.inference.legacy_h5: Keras 2 and Keras 3 `.h5` files load with equal predictions.

The Keras 2 files are made by tf_keras (the Keras 2 package) in a subprocess, so that Keras 2 and
Keras 3 never share a process; that subprocess also records Keras 2's own predictions.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from retina_desktop.core.errors import ModelError, UnsafeModelError
from retina_desktop.inference.legacy_h5 import load_h5_model, upgrade_config
from tests.keras2_scripts import REWRITE_AS_KERAS24

REPO = Path(__file__).resolve().parents[1]
NO_TF_KERAS = 3  # exit status of the script below when tf_keras cannot be imported

# Builds the Keras 2 files with random weights (weights=None, no downloads) and a fixed seed.
KERAS2_SCRIPT = REWRITE_AS_KERAS24 + r"""
import json, pathlib, sys
import h5py, numpy as np
try:
    import tf_keras as k
except ImportError as err:
    print(err)
    sys.exit(3)

out = pathlib.Path(sys.argv[1])
k.utils.set_random_seed(0)
rng = np.random.default_rng(0)


def randomise_batch_norm(model):
    # Fresh statistics are 0 and 1, which would hide moving means and variances loaded into
    # the wrong layer; these are stored last in a nested model's weights.
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape),
            ])


def save(model, name, size):
    x = rng.uniform(-1, 1, (4, size, size, 3)).astype("float32") if size else \
        rng.uniform(-1, 1, (4, 4)).astype("float32")
    model.save(out / f"{name}.h5", save_format="h5")
    np.save(out / f"{name}_x.npy", x)
    np.save(out / f"{name}_y.npy", model.predict(x, verbose=0))


def mobilenet():
    base = k.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights=None)
    randomise_batch_norm(base)
    return base


# (a) Teachable-Machine-shaped, as the project brief describes it, JSON as tf_keras writes it.
tm = k.Sequential([
    k.Sequential([mobilenet()], name="sequential_1"),
    k.Sequential([
        k.layers.GlobalAveragePooling2D(),
        k.layers.Dense(100, activation="relu"),
        k.layers.Dense(3, activation="softmax", use_bias=False),
    ], name="sequential_3"),
], name="sequential_4")
save(tm, "tm_brief", 224)

# (b) The layout of a real Teachable Machine export (its summary shows sequential_1 giving
# (None, 1280) and sequential_3 holding the two Dense layers), with the JSON rewritten the way
# Keras 2.4-era tf.keras wrote it: no module/registered_name/build_config, class "Model",
# byte-string attributes.
base = mobilenet()
tm = k.Sequential([
    k.Sequential([k.Model(base.inputs, base.outputs, name="model1"),
                  k.layers.GlobalAveragePooling2D()], name="sequential_1"),
    k.Sequential([
        k.layers.Dense(100, activation="relu", name="dense_Dense1"),
        k.layers.Dense(3, activation="softmax", use_bias=False, name="dense_Dense2"),
    ], name="sequential_3"),
], name="sequential_4")
save(tm, "tm_export", 224)
rewrite_as_keras24(out / "tm_export.h5")

# (c) VGG16 backbone in a Sequential, as in student projects.
vgg = k.Sequential([
    k.applications.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3)),
    k.layers.Flatten(),
    k.layers.Dense(16, activation="relu"),
    k.layers.Dense(2, activation="softmax"),
])
save(vgg, "vgg16", 64)

# (d) Weights only, no architecture.
small = k.Sequential([k.Input((4,)), k.layers.Dense(2)])
small.save_weights(out / "weights_only.h5")

# (e) A Lambda layer, which safe mode must refuse.
lam = k.Sequential([k.Input((4,)), k.layers.Lambda(lambda t: t * 2.0), k.layers.Dense(2)])
save(lam, "lambda", 0)
"""


@pytest.fixture(scope="session")
def keras2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of `.h5` files written by tf_keras, with inputs and Keras 2's predictions."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf_keras (Keras 2) is not installed")
    out = tmp_path_factory.mktemp("keras2")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", KERAS2_SCRIPT, str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    if done.returncode == NO_TF_KERAS:
        pytest.skip(f"tf_keras (Keras 2) cannot be imported: {done.stdout.strip()}")
    if done.returncode != 0:
        pytest.fail(f"tf_keras could not write the test models:\n{done.stderr[-3000:]}")
    return out


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0))


def assert_same_predictions(folder: Path, name: str, path: Path | None = None) -> None:
    model = load_h5_model(path or folder / f"{name}.h5")
    x = np.load(folder / f"{name}_x.npy")
    theirs = np.load(folder / f"{name}_y.npy")
    ours = predict(model, x)
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, atol=1e-4), np.abs(ours - theirs).max()


@pytest.mark.parametrize("name", ["tm_brief", "tm_export"])
def test_teachable_machine_model_predicts_as_in_keras2(keras2_dir: Path, name: str) -> None:
    assert_same_predictions(keras2_dir, name)


def test_vgg16_in_sequential_predicts_as_in_keras2(keras2_dir: Path) -> None:
    assert_same_predictions(keras2_dir, "vgg16")


def test_weights_are_matched_by_layer_name_not_stored_order(
    keras2_dir: Path, tmp_path: Path
) -> None:
    # Move the first layer's weights to the end of the nested model's list: loading by order
    # alone would put Conv1's kernel into bn_Conv1.
    path = tmp_path / "reordered.h5"
    shutil.copy(keras2_dir / "tm_export.h5", path)
    with h5py.File(path, "r+") as h5:
        group = h5["model_weights"]["sequential_1"]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        first = [n for n in names if n.split("/")[-2] == "Conv1"]
        rest = [n for n in names if n not in first]
        assert first and names[: len(first)] == first
        group.attrs["weight_names"] = [n.encode() for n in rest + first]
    assert_same_predictions(keras2_dir, "tm_export", path)


def test_weights_that_do_not_fit_the_architecture_raise(keras2_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    shutil.copy(keras2_dir / "tm_brief.h5", path)
    with h5py.File(path, "r+") as h5:
        config = h5.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert '"units": 100' in config
        h5.attrs["model_config"] = config.replace('"units": 100', '"units": 50')
    with pytest.raises(ModelError, match="do not match") as caught:
        load_h5_model(path)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is not None


def test_lambda_is_refused_in_safe_mode_and_loads_without_it(keras2_dir: Path) -> None:
    path = keras2_dir / "lambda.h5"
    with pytest.raises(UnsafeModelError, match="Lambda") as caught:
        load_h5_model(path)
    assert str(path) in str(caught.value)
    model = load_h5_model(path, safe_mode=False)
    x = np.load(keras2_dir / "lambda_x.npy")
    assert np.allclose(predict(model, x), np.load(keras2_dir / "lambda_y.npy"), atol=1e-5)


def test_weights_only_file_raises(keras2_dir: Path) -> None:
    path = keras2_dir / "weights_only.h5"
    with pytest.raises(ModelError, match="only weights") as caught:
        load_h5_model(path)
    assert str(path) in str(caught.value)


def test_keras3_h5_round_trips(tmp_path: Path) -> None:
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    backbone = keras.Model(inputs, x, name="backbone")
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()], name="features"),
        keras.layers.Dense(3, activation="softmax", name="head"),
    ])
    path = tmp_path / "keras3.h5"
    model.save(path)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    assert np.allclose(predict(load_h5_model(path), images), predict(model, images), atol=1e-6)


def test_not_hdf5_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.h5"
    path.write_bytes(b"this is not a model\n")
    with pytest.raises(ModelError, match="not an HDF5") as caught:
        load_h5_model(path)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is not None


def test_missing_file_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(ModelError, match="not found") as caught:
        load_h5_model(path)
    assert str(path) in str(caught.value)


def test_upgrade_config_rewrites_keras2_spellings() -> None:
    config = {
        "class_name": "Model",
        "module": "tf_keras.src.engine.functional",
        "config": {
            "name": "m",
            "layers": [
                {"class_name": "InputLayer",
                 "config": {"batch_input_shape": [None, 8, 8, 3], "name": "in"}},
                {"class_name": "DepthwiseConv2D", "registered_name": None,
                 "config": {"groups": 1, "kernel_size": [3, 3],
                            "dtype": {"class_name": "Policy", "config": {"name": "float32"}}}},
            ],
            "input_layers": [["in", 0, 0]],
            "output_layers": [["dw", 0, 0]],
        },
    }
    new = upgrade_config(config)
    assert new["class_name"] == "Functional" and "module" not in new
    input_layer, depthwise = new["config"]["layers"]
    assert input_layer["config"]["batch_shape"] == [None, 8, 8, 3]
    assert depthwise["config"] == {"kernel_size": [3, 3], "dtype": "float32"}
    assert new["config"]["input_layers"] == ["in", 0, 0]
    assert new["config"]["output_layers"] == ["dw", 0, 0]
    assert config["config"]["layers"][1]["config"]["groups"] == 1  # the input is left alone


def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys, retina_desktop.inference.legacy_h5; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
