"""Turning a decoded image into the model's input: the one definition used everywhere.

`fit_image` resizes an RGB image to the model's input size (centre crop as Teachable Machine
does, letterbox padding, stretching, or field-of-view standardisation for fundus photographs),
and `scale_pixels` applies the model's pixel scaling.
Training builds its cached arrays with `fit_image` too, so the app and training cannot drift.
Our own models carry their rescaling inside the network (scaling "none").
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

from retina_desktop.core.model_card import InputSpec
from retina_desktop.imaging.fov import UNSEARCHED

# Lanczos is what Teachable Machine's own snippet uses; matching it keeps exports' accuracy.
RESAMPLE = Image.Resampling.LANCZOS


def fit_image(image: Image.Image, spec: InputSpec, circle=UNSEARCHED) -> np.ndarray:
    """Resize an RGB image to (spec.height, spec.width, 3) uint8 following `spec.fit`.

    `circle`: the image's field of view (`fov` fit) when the caller has searched for it already
    (None: there is none), so that the fit and the checks share one search."""
    size = (spec.width, spec.height)
    if spec.fit == "fov":
        from retina_desktop.imaging.fov import standardise_field_of_view

        framed = standardise_field_of_view(image, size, circle=circle, resample=RESAMPLE)
        if framed is not None:
            return framed
        # No fundus rim (a photograph filling the frame, another kind of image): keep all of
        # it, unharmed, as the pad fit does; the image checks judge whether it is a fundus.
        fitted = ImageOps.pad(image, size, method=RESAMPLE, color=(0, 0, 0), centering=(0.5, 0.5))
    elif spec.fit == "crop":
        fitted = ImageOps.fit(image, size, method=RESAMPLE, centering=(0.5, 0.5))
    elif spec.fit == "pad":
        fitted = ImageOps.pad(image, size, method=RESAMPLE, color=(0, 0, 0), centering=(0.5, 0.5))
    else:
        fitted = image.resize(size, RESAMPLE)
    return np.asarray(fitted.convert("RGB"), dtype=np.uint8)


def scale_pixels(pixels: np.ndarray, scaling: str) -> np.ndarray:
    """Map uint8 pixels (any leading batch axes) to the float32 range the model expects."""
    values = pixels.astype(np.float32)
    if scaling == "tm":
        return values / 127.5 - 1.0
    if scaling == "unit":
        return values / 255.0
    return values


def prepare_batch(images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Stack fitted uint8 images into one scaled float32 batch."""
    return scale_pixels(np.stack(images, axis=0), spec.scaling)
