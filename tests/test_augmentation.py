"""Traditional augmentation: anatomy-aware defaults, seeded previews, a saveable gamma layer."""

from __future__ import annotations

import numpy as np

from retina_desktop.augmentation import AugmentConfig, build_augmenter, default_config, preview, random_gamma_layer
from retina_desktop.quiet import import_keras
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
