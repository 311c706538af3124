"""Tests for retina_desktop.inference.heatmaps: Grad-CAM finds the evidence, works for our models and
Teachable-Machine-shaped nested models, runs under the classifier's lock, and the overlay and
placement onto the whole photograph are right."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from retina_desktop.core.model_card import InputSpec
from retina_desktop.inference.heatmaps import find_target_layer, gradcam, heatmap_for, overlay, place_heatmap
from tests.conftest import CLASSES, fundus_like


def two_square_image(size: int = 32) -> np.ndarray:
    """A red square top-left and a green square bottom-right, on black."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[2:12, 2:12, 0] = 255
    image[20:30, 20:30, 1] = 255
    return image


@pytest.fixture(scope="module")
def colour_model():
    """Class 0 = "red", class 1 = "green": each class's evidence is one square of the image."""
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    inputs = keras.Input((32, 32, 3))
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="last_conv")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, outputs)
    model.get_layer("last_conv").set_weights([np.array([[[[1, 0], [0, 1], [0, 0]]]], "float32")])
    model.get_layer("predictions").set_weights([np.array([[5, -5], [-5, 5]], "float32"), np.zeros(2, "float32")])
    return model


def test_heatmap_peaks_where_the_evidence_is(colour_model) -> None:
    image = two_square_image()
    red = gradcam(colour_model, image, 0, scaling="unit")
    green = gradcam(colour_model, image, 1, scaling="unit")
    for heat in (red, green):
        assert heat.shape == (32, 32) and heat.dtype == np.float32
        assert 0.0 <= heat.min() and heat.max() == pytest.approx(1.0)
    assert red[4:10, 4:10].mean() > 0.9 and red[22:28, 22:28].max() < 0.05
    assert green[22:28, 22:28].mean() > 0.9 and green[4:10, 4:10].max() < 0.05
    # The model is left as it was: still a softmax, no wrapped layer.
    probs = colour_model(image[None].astype("float32") / 255.0).numpy()
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert "call" not in vars(colour_model.get_layer("last_conv"))


def test_heatmap_for_our_model_runs_under_the_lock_on_the_calling_thread(small_bundle) -> None:
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(small_bundle)
    picture = fundus_like(64, seed=3)
    results = {}

    def work():
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "eye.png"
            picture.save(path)
            prediction = classifier.predict_file(path)
            results["maps"] = [heatmap_for(classifier, prediction, name) for name in CLASSES]
            results["default"] = heatmap_for(classifier, prediction)
            results["label"] = prediction.label

    thread = threading.Thread(target=work, name="heatmap-worker")
    thread.start()
    thread.join(120)
    assert "maps" in results
    assert classifier.model_threads == {"heatmap-worker"}
    for heat in results["maps"]:
        assert heat.shape == (48, 48) and np.isfinite(heat).all()
        assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert np.array_equal(results["default"], results["maps"][CLASSES.index(results["label"])])
    assert len({m.tobytes() for m in results["maps"]}) > 1  # classes differ


def test_unknown_class_is_refused(small_bundle) -> None:
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(small_bundle)
    bundle = classifier.bundle()
    prediction = type("P", (), {"label": "nope", "processed_image": np.zeros((48, 48, 3), np.uint8)})()
    with pytest.raises(ValueError, match="nope"):
        heatmap_for(classifier, prediction)
    assert bundle.classes == CLASSES


def test_teachable_machine_shaped_model(tmp_path) -> None:
    """Sequential > Sequential > Functional MobileNetV2: no `last_conv`, the block is nested;
    saved as .h5 without a sidecar and loaded the way the app loads a TM export."""
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.inference.bundle import load_bundle
    from retina_desktop.inference.model_files import write_labels

    keras = import_keras()
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    model = keras.Sequential([
        keras.Input((96, 96, 3)),
        keras.Sequential([base, keras.layers.GlobalAveragePooling2D()], name="sequential_1"),
        keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")],
                         name="sequential_3"),
    ], name="sequential_4")
    model.save(tmp_path / "keras_model.h5")
    write_labels(tmp_path / "labels.txt", ["a", "b", "c"])
    bundle = load_bundle(tmp_path / "keras_model.h5")
    assert bundle.metadata.input.scaling == "tm"
    target = find_target_layer(bundle.model)
    assert len(target.output.shape) == 4
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    maps = [gradcam(bundle, image, c) for c in range(3)]
    for heat in maps:
        assert heat.shape == (96, 96) and np.isfinite(heat).all()
        assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert any(heat.max() > 0 for heat in maps)
    assert len({m.tobytes() for m in maps}) > 1


def test_place_heatmap_follows_the_centre_crop_and_the_letterbox() -> None:
    heat = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    crop = place_heatmap(heat, (200, 100), InputSpec(4, 4, "crop", "none"))
    assert crop.shape == (100, 200)
    assert np.isnan(crop[:, :45]).all() and np.isnan(crop[:, 155:]).all()  # the sides were cut
    assert np.isfinite(crop[:, 55:145]).all()
    pad = place_heatmap(heat, (200, 100), InputSpec(4, 4, "pad", "none"))
    assert np.isfinite(pad).all()  # the whole picture was seen, from the middle rows of the input
    assert pad.min() >= heat[1].min() - 1e-6 and pad.max() <= heat[2].max() + 1e-6
    stretch = place_heatmap(heat, (200, 100), InputSpec(4, 4, "stretch", "none"))
    assert np.isfinite(stretch).all() and stretch.shape == (100, 200)


def test_overlay_blends_only_where_the_model_looked() -> None:
    image = np.full((20, 30, 3), 100, dtype=np.uint8)
    heat = np.ones((20, 30), dtype=np.float32)
    heat[:, :10] = np.nan
    blended = overlay(image, heat, 0.5)
    assert blended.dtype == np.uint8 and blended.shape == image.shape
    assert np.array_equal(blended[:, :10], image[:, :10])
    assert not np.array_equal(blended[:, 12:], image[:, 12:])
    assert np.array_equal(overlay(image, heat, 0.0), image)
    small = overlay(image, np.zeros((5, 5), np.float32), 1.0)  # resized to the image
    assert small.shape == image.shape


def test_a_field_of_view_heatmap_lands_on_the_disc_not_on_the_cameras_black_frame():
    """A fundus model reads the square around the fitted field of view; on a wide camera frame
    that square is a part of the picture, and where the camera cut the disc it reaches beyond
    the picture. The heatmap was stretched over the whole frame instead."""
    heat = np.zeros((8, 8), np.float32)
    heat[:, 4:] = 1.0  # the right half of the model's input
    spec = InputSpec(8, 8, "fov", "none")
    # A 400 x 200 frame; the disc's square spans x 100-300 and y -50-250 (cut at top and bottom).
    box = (100 / 400, -50 / 200, 300 / 400, 250 / 200)
    placed = place_heatmap(heat, (400, 200), spec, box)
    assert np.isnan(placed[:, :100]).all() and np.isnan(placed[:, 300:]).all()  # the black sides
    assert np.nanmean(placed[:, 100:195]) < 0.1 and np.nanmean(placed[:, 205:300]) > 0.9
    # No field of view found: the fit padded the picture, and so does the heatmap.
    padded = place_heatmap(heat, (400, 200), spec, None)
    assert np.isfinite(padded).all() and padded[:, 300:].mean() > 0.9 and padded[:, :100].mean() < 0.1
