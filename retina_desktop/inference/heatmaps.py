"""Heatmaps: where in the image the model found evidence for a class (Grad-CAM).

`gradcam` is a pure function of a model, an image as the model saw it and a class: it returns
an (h, w) array in [0, 1]. Drawing is separate: `place_heatmap` puts that array back onto the
whole photograph (the model saw only a centre crop or a letterboxed copy of it), and `overlay`
blends it onto an image with a matplotlib colormap. `heatmap_for(classifier, ...)` runs it on
a classifier's model (`service.Classifier.heatmap`), on a worker thread.

The class activation map itself comes from the bundle's runtime (`runtime.ModelRuntime.gradcam`):
the Keras runtime differentiates the model with TensorFlow, capturing the activations of the
layer `layers.find_target_layer` picks while the model runs (which works for Teachable Machine
exports, whose block is nested inside Sequential models); the compiled (LiteRT) runtime gets
the same Grad-CAM without TensorFlow, differentiating the small head after those activations
in numpy (`litert_backend.Head`). This module resizes and normalises what either returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from retina_desktop.core.model_card import InputSpec
from retina_desktop.core.prediction import Prediction
from retina_desktop.imaging.preprocessing import scale_pixels
from retina_desktop.inference.layers import TARGET_LAYER, find_target_layer, iter_layers, output_layer  # noqa: F401  (public names kept)
from retina_desktop.inference.model_runtime import KerasRuntime


def gradcam(
    model_or_bundle: Any,
    image: np.ndarray,
    class_index: int,
    *,
    scaling: str | None = None,
    layer: Any = None,
) -> np.ndarray:
    """Grad-CAM of `class_index` for one fitted uint8 image (h, w, 3): (h, w) floats in [0, 1].

    `model_or_bundle` is a `ModelBundle` (its sidecar gives the pixel scaling, its runtime runs
    the model) or a bare Keras model (then pass `scaling`, default "none"). `layer` reads
    another layer than the default target, on the Keras model. The score is the class's logit
    when the model ends in a softmax, so that a confident answer does not flatten the gradient
    to zero. Not thread-safe on one model (it traces it): callers serialise, as
    `service.Classifier.heatmap` does.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected one (h, w, 3) image, got shape {image.shape}")
    metadata = getattr(model_or_bundle, "metadata", None)
    if metadata is not None:  # a bundle
        scaling = scaling or metadata.input.scaling
        scaled = scale_pixels(image, scaling)
        if layer is None:
            cam = model_or_bundle.runtime.gradcam(scaled, int(class_index))
        else:
            cam = model_or_bundle.keras_runtime().gradcam(scaled, int(class_index), layer=layer)
    else:
        scaled = scale_pixels(image, scaling or "none")
        cam = KerasRuntime(model_or_bundle).gradcam(scaled, int(class_index), layer=layer)
    return _normalised(cam, image)


def _normalised(cam: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A raw class activation map resized to the image and scaled to [0, 1]."""
    cam = _resize(np.asarray(cam, dtype=np.float32), image.shape[1], image.shape[0])
    top = float(cam.max())
    return np.clip(cam / top, 0.0, 1.0) if top > 0 else np.zeros_like(cam)


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    if values.shape == (height, width):
        return values
    resized = Image.fromarray(values.astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR)
    return np.maximum(np.asarray(resized, dtype=np.float32), 0.0)


def heatmap_for(classifier: Any, prediction: Prediction, class_name: str | None = None) -> np.ndarray:
    """Grad-CAM for `prediction` (its predicted class unless `class_name` is given), from the
    classifier's model: `service.Classifier.heatmap`.

    Runs model code: call it from a worker thread, never the Tk thread. Thread-safe: the
    classifier serialises it with its other model calls.
    """
    return classifier.heatmap(prediction, class_name)


def model_view_box(size: tuple[int, int], spec: InputSpec,
                   field_of_view: tuple[float, float, float, float] | None = None,
                   ) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]]:
    """Where the model's input lies on a picture of `size` (w, h) fitted by `spec.fit`.

    Returns (box on the picture, box on the model input), each (left, top, right, bottom) as
    fractions, mirroring `preprocessing.fit_image` (centre crop, letterbox pad, stretch, or the
    square around the fitted field of view, `field_of_view`, which may reach beyond the picture;
    a "fov" fit that found none padded the picture).
    """
    width, height = size
    ratio = width / height
    out_ratio = spec.width / spec.height
    whole = (0.0, 0.0, 1.0, 1.0)
    if spec.fit == "fov":
        if field_of_view is not None:
            return field_of_view, whole
        spec = InputSpec(spec.height, spec.width, "pad", spec.scaling)
    if spec.fit == "crop":
        if ratio > out_ratio:  # wider than the model's input: the sides are cut
            keep = out_ratio / ratio
            return ((1 - keep) / 2, 0.0, (1 + keep) / 2, 1.0), whole
        keep = ratio / out_ratio
        return (0.0, (1 - keep) / 2, 1.0, (1 + keep) / 2), whole
    if spec.fit == "pad":
        if ratio > out_ratio:  # black bars above and below on the model's input
            used = out_ratio / ratio
            return whole, (0.0, (1 - used) / 2, 1.0, (1 + used) / 2)
        used = ratio / out_ratio
        return whole, ((1 - used) / 2, 0.0, (1 + used) / 2, 1.0)
    return whole, whole


def place_heatmap(heatmap: np.ndarray, size: tuple[int, int], spec: InputSpec,
                  field_of_view: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Map a heatmap over the model's input onto a picture of `size` (w, h); `field_of_view`:
    the prediction's (`Prediction.field_of_view`) for a model that standardises it.

    Returns an (h, w) array with NaN where the model did not look (outside a centre crop, or
    outside the square around the field of view: a wide camera frame's black sides).
    """
    width, height = size
    picture_box, input_box = _within_picture(*model_view_box(size, spec, field_of_view))
    hh, hw = heatmap.shape
    crop = heatmap[
        int(round(input_box[1] * hh)) : max(int(round(input_box[3] * hh)), 1),
        int(round(input_box[0] * hw)) : max(int(round(input_box[2] * hw)), 1),
    ]
    left, top = int(round(picture_box[0] * width)), int(round(picture_box[1] * height))
    right, bottom = int(round(picture_box[2] * width)), int(round(picture_box[3] * height))
    placed = np.full((height, width), np.nan, dtype=np.float32)
    if right > left and bottom > top and crop.size:
        placed[top:bottom, left:right] = _resize(crop, right - left, bottom - top)
    return placed


def _within_picture(picture_box, input_box):
    """Both boxes cut to the part of `picture_box` inside the picture (a field of view the camera
    cut reaches beyond it: that part of the model's input was black padding)."""
    pl, pt, pr, pb = picture_box
    il, it, ir, ib = input_box
    sx, sy = (ir - il) / (pr - pl), (ib - it) / (pb - pt)
    vl, vt, vr, vb = max(pl, 0.0), max(pt, 0.0), min(pr, 1.0), min(pb, 1.0)
    return (vl, vt, vr, vb), (il + (vl - pl) * sx, it + (vt - pt) * sy, il + (vr - pl) * sx, it + (vb - pt) * sy)


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend `heatmap` ([0, 1], NaN = leave the pixel alone) onto an RGB uint8 image."""
    from matplotlib import colormaps

    image = np.asarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (height, width):
        mask = np.isfinite(heat)
        heat = _resize(np.nan_to_num(heat), width, height)
        heat[_resize(mask.astype(np.float32), width, height) < 0.5] = np.nan
    valid = np.isfinite(heat)
    colours = colormaps[cmap](np.clip(np.nan_to_num(heat), 0.0, 1.0))[..., :3] * 255.0
    alpha = float(np.clip(opacity, 0.0, 1.0)) * valid[..., None]
    blended = image.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
