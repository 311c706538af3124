"""Traditional augmentation: anatomy-aware defaults, seeded previews, a saveable gamma layer."""

from __future__ import annotations

import numpy as np

from retina_desktop.core.quiet import import_keras
from retina_desktop.imaging.augmentation import (
    AugmentConfig,
    build_augmenter,
    default_config,
    preview,
    random_gamma_layer,
)
from tests.conftest import fundus_like


def _batch(n=4):
    return np.stack([np.asarray(fundus_like(48, seed=i)) for i in range(n)])


def test_oct_never_flips_vertically_and_rotates_less():
    oct_config, fundus_config = default_config("oct"), default_config("fundus")
    assert not oct_config.flip_vertical
    assert oct_config.rotation_degrees < fundus_config.rotation_degrees
    modes = [layer.mode for layer in build_augmenter(oct_config).layers if hasattr(layer, "mode")]
    assert modes == ["horizontal"]


def test_preview_changes_images_and_is_seeded():
    images = _batch()
    first = preview(images, default_config("fundus"), seed=3)
    again = preview(images, default_config("fundus"), seed=3)
    other = preview(images, default_config("fundus"), seed=4)
    assert first.shape == images.shape and first.dtype == np.uint8
    assert not np.array_equal(first, images)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_everything_off_is_the_identity():
    off = AugmentConfig(flip_horizontal=False, rotation_degrees=0, zoom=0, brightness=0, contrast=0, gamma=0)
    images = _batch(2)
    assert np.array_equal(preview(images, off), images)


def test_gamma_layer_round_trips_through_a_saved_model(tmp_path):
    keras = import_keras()
    gamma = random_gamma_layer()(0.3, seed=1)
    model = keras.Sequential([keras.Input((8, 8, 3)), gamma])
    path = tmp_path / "g.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.full((1, 8, 8, 3), 128.0, "float32")
    assert np.allclose(loaded(x, training=False), x)  # identity outside training
    out = np.asarray(loaded(x, training=True))
    assert out.min() >= 0 and out.max() <= 255


# ---- the fixed-value transforms of the Augment tab mirror the training layers ----------------


def _keras_once(layer, image):
    out = layer(image[None].astype("float32"), training=True)
    return np.clip(np.rint(np.asarray(out)[0]), 0, 255).astype(np.uint8)


def _mean_abs(a, b):
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def test_fixed_transforms_match_the_keras_layers_they_preview():
    from retina_desktop.imaging.augmentation import Transform, apply_transform

    keras = import_keras()
    image = np.asarray(fundus_like(64, seed=5))
    pinned = [  # a layer whose random range is a single value, and the same value as a Transform
        (keras.layers.RandomRotation((20 / 360, 20 / 360), fill_mode="constant"), Transform(rotation_degrees=20)),
        (keras.layers.RandomZoom((0.2, 0.2), fill_mode="constant"), Transform(zoom=0.2)),
        (keras.layers.RandomZoom((-0.2, -0.2), fill_mode="constant"), Transform(zoom=-0.2)),
        (keras.layers.RandomBrightness((0.1, 0.1)), Transform(brightness=0.1)),
    ]
    for layer, transform in pinned:
        ours, theirs = apply_transform(image, transform), _keras_once(layer, image)
        # Interpolation kernels differ slightly (measured 0.3 to 1.7 levels); a wrong direction or sign
        # would differ by tens of levels on average.
        assert _mean_abs(ours, theirs) < 2.5, (transform.describe(), _mean_abs(ours, theirs))
        assert _mean_abs(ours, image) > 3.0, transform.describe()  # and it did change the image
    # RandomContrast cannot be pinned by its factor; its transform takes the drawn factor.
    contrast = keras.layers.RandomContrast(0.5)
    theirs = contrast.transform_images(image[None].astype("float32"), {"contrast_factor": np.full((1, 1, 1, 1), 0.7)})
    theirs = np.clip(np.rint(np.asarray(theirs)[0]), 0, 255).astype(np.uint8)
    assert _mean_abs(apply_transform(image, Transform(contrast=0.7)), theirs) < 0.6


def test_fixed_gamma_and_flips_are_exact():
    from retina_desktop.imaging.augmentation import Transform, apply_transform

    image = np.asarray(fundus_like(32, seed=6))
    assert np.array_equal(apply_transform(image, Transform(flip_horizontal=True)), image[:, ::-1])
    assert np.array_equal(apply_transform(image, Transform(flip_vertical=True)), image[::-1])
    expected = np.rint(((image / 255.0) ** 0.5) * 255).astype(np.uint8)
    assert np.abs(apply_transform(image, Transform(gamma=0.5)).astype(int) - expected).max() <= 1
    assert np.array_equal(apply_transform(image, Transform()), image)


def test_random_previews_draw_within_the_training_ranges_and_are_seeded():
    from retina_desktop.imaging.augmentation import random_previews

    image = np.asarray(fundus_like(32, seed=7))
    config = default_config("oct")
    first = random_previews(image, config, 40, seed=1)
    again = random_previews(image, config, 40, seed=1)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again))
    draws = [t for _, t in first]
    assert not any(t.flip_vertical for t in draws)  # OCT: never upside down
    assert any(t.flip_horizontal for t in draws) and not all(t.flip_horizontal for t in draws)
    assert max(abs(t.rotation_degrees) for t in draws) <= config.rotation_degrees
    assert max(abs(t.zoom) for t in draws) <= config.zoom
    assert len({round(t.gamma, 4) for t in draws}) > 30
