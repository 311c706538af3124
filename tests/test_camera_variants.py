"""Camera variants of real photographs (training/classifier/camera_variants.py): each is still the
photograph's fundus, framed or exposed as another camera would."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.imaging.fov import find_field_of_view
from tests.conftest import fundus_like
from training.classifier.camera_variants import VARIANTS, clipped_3_2


def test_the_3_2_frame_clips_the_field_at_top_and_bottom_and_keeps_its_sides():
    photo = fundus_like(400)
    frame = np.asarray(clipped_3_2(photo))
    assert frame.shape == (1000, 1500, 3)
    rows = np.flatnonzero(frame.max(axis=(1, 2)) > 20)
    cols = np.flatnonzero(frame.max(axis=(0, 2)) > 20)
    # The field runs off the frame's top and bottom (the sensor's cut) but not off its sides.
    assert rows[0] == 0 and rows[-1] == 999
    assert cols[0] > 100 and cols[-1] < 1400
    circle = find_field_of_view(frame)
    assert circle is not None and circle.r == pytest.approx(640, rel=0.05)  # the whole circle, from its sides


def test_every_variant_is_a_colour_picture_of_the_same_eye():
    photo = fundus_like(300, seed=4)
    for name, make in VARIANTS.items():
        variant = make(photo)
        pixels = np.asarray(variant)
        assert variant.mode == "RGB" and pixels.ndim == 3, name
        assert pixels.max() > 40, name  # not blanked
    assert VARIANTS["large"](photo).width == 4000 and VARIANTS["small"](photo).width == 512
    bright, dark = np.asarray(VARIANTS["bright"](photo)), np.asarray(VARIANTS["dark"](photo))
    assert bright.mean() > np.asarray(photo).mean() > dark.mean()
