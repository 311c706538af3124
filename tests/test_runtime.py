"""Tests for retina_desktop.inference.model_runtime (and retina_desktop.inference.layers): the Keras and LiteRT runtimes
both implement `ModelRuntime`, the bundle chooses one when it opens a model, and they give the
same probabilities, features and Grad-CAM."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.imaging.preprocessing import prepare_batch
from retina_desktop.inference.bundle import load_bundle
from retina_desktop.inference.layers import find_target_layer, iter_layers, output_layer
from retina_desktop.inference.model_runtime import KerasRuntime, LiteRTRuntime, ModelRuntime
from tests.conftest import CLASSES


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _batch(n: int = 3, size: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_a_keras_bundle_runs_on_the_keras_runtime(small_bundle) -> None:
    bundle = load_bundle(small_bundle, backend="keras")
    runtime = bundle.runtime
    assert isinstance(runtime, KerasRuntime) and isinstance(runtime, ModelRuntime)
    assert runtime.name == bundle.backend == "keras"
    assert runtime.input_shape == (48, 48, 3) and runtime.num_classes == len(CLASSES)
    assert runtime.feature_layer == "last_conv" and runtime.can_explain
    batch = prepare_batch(list(_batch()), bundle.metadata.input)
    probs = runtime.predict(batch)
    with_features, features = runtime.predict_with_features(batch)
    assert probs.shape == (3, len(CLASSES))
    np.testing.assert_allclose(with_features, probs, atol=1e-6)
    assert features.ndim == 2 and len(features) == 3
    np.testing.assert_array_equal(runtime.features(batch), features)
    cam = runtime.gradcam(batch[0], 0)
    assert cam.ndim == 2 and np.isfinite(cam).all() and cam.min() >= 0


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
def test_the_litert_runtime_answers_like_keras(small_bundle, tmp_path) -> None:
    from training.classifier.export import export_model

    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in ("keras_model.h5", "labels.txt", "keras_model.json"):
        shutil.copy2(Path(small_bundle).parent / name, folder / name)
    export_model(folder / "keras_model.h5")
    keras_side = load_bundle(folder / "keras_model.h5", backend="keras").runtime
    bundle = load_bundle(folder / "keras_model.h5", backend="litert")
    litert_side = bundle.runtime
    assert isinstance(litert_side, LiteRTRuntime) and isinstance(litert_side, ModelRuntime)
    assert litert_side.name == bundle.backend == "litert"
    assert not bundle.keras_loaded  # the choice needed no Keras
    assert litert_side.input_shape == keras_side.input_shape
    assert litert_side.num_classes == keras_side.num_classes
    assert litert_side.feature_layer == keras_side.feature_layer == "last_conv"
    batch = prepare_batch(list(_batch()), bundle.metadata.input)
    np.testing.assert_allclose(litert_side.predict(batch), keras_side.predict(batch), atol=1e-4)
    (_, ours), (_, theirs) = litert_side.predict_with_features(batch), keras_side.predict_with_features(batch)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    for index in range(len(CLASSES)):
        mine, keras_cam = litert_side.gradcam(batch[0], index), keras_side.gradcam(batch[0], index)
        assert mine.shape == keras_cam.shape
        scale = max(float(keras_cam.max()), 1e-6)
        np.testing.assert_allclose(mine / scale, keras_cam / scale, atol=2e-3)


def test_layers_are_found_in_nested_models() -> None:
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 1, name="block")], name="inner")
    model = keras.Sequential([keras.Input((8, 8, 3)), inner, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    assert [layer.name for layer in iter_layers(model)][:1] == ["block"]
    assert find_target_layer(model).name == "block"
    assert output_layer(model).name == "head"
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no convolutional"):
        find_target_layer(flat)
    assert KerasRuntime(flat).feature_layer is None and not KerasRuntime(flat).can_explain


def test_blas_runs_on_one_thread_around_the_apps_small_products_and_is_restored_after():
    """OpenBLAS threads left spinning after a familiarity distance slowed the next model call
    from 7 to 13 ms on two cores (inference/blas_threads.py)."""
    from threadpoolctl import threadpool_info

    from retina_desktop.inference.blas_threads import one_blas_thread

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    with one_blas_thread():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
