"""Heatmaps: where in the image the model found evidence for a class (Grad-CAM).

`gradcam` is a pure function of a model, an image as the model saw it and a class: it returns
an (h, w) array in [0, 1]. Drawing is separate: `place_heatmap` puts that array back onto the
whole photograph (the model saw only a centre crop or a letterboxed copy of it), and `overlay`
blends it onto an image with a matplotlib colormap. `heatmap_for` is the service entry point
that the GUI calls on its worker thread.

Grad-CAM needs the activations of the last convolutional block and their gradient. Our models
name that block `last_conv`; Teachable Machine exports nest a MobileNetV2 inside Sequential
models, where that block's output is not reachable as a tensor of the outer graph. So the
activations are captured while the model runs, by wrapping the target layer's `call`, which
works for any nesting, and the layer is restored before returning.

A bundle served by a compiled (LiteRT) model gets the same Grad-CAM without TensorFlow: the
compiled model outputs the target layer's activations too, and the small head after them is
differentiated in numpy (`litert_backend.Head`).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np
from PIL import Image

from .preprocessing import scale_pixels
from .quiet import import_keras
from .records import InputSpec, Prediction

TARGET_LAYER = "last_conv"


def iter_layers(model: Any):
    """Every leaf layer of `model` in call order, descending into nested models."""
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            yield from iter_layers(layer)
        else:
            yield layer


def _output_rank(layer: Any) -> int | None:
    try:
        return len(layer.output.shape)
    except Exception:  # a layer never called in a graph has no symbolic output
        return None


def find_target_layer(model: Any) -> Any:
    """The layer whose activations Grad-CAM reads: `last_conv`, else the last 4-D output."""
    layers = list(iter_layers(model))
    for layer in layers:
        if layer.name == TARGET_LAYER:
            return layer
    for layer in reversed(layers):
        if _output_rank(layer) == 4:
            return layer
    raise ValueError(f"Model {getattr(model, 'name', '?')!r} has no convolutional (4-D) layer for a heatmap")


def output_layer(model: Any) -> Any:
    layers = list(iter_layers(model))
    return layers[-1] if layers else model


def gradcam(
    model_or_bundle: Any,
    image: np.ndarray,
    class_index: int,
    *,
    scaling: str | None = None,
    layer: Any = None,
) -> np.ndarray:
    """Grad-CAM of `class_index` for one fitted uint8 image (h, w, 3): (h, w) floats in [0, 1].

    `model_or_bundle` is a `ModelBundle` (its sidecar gives the pixel scaling) or a bare Keras
    model (then pass `scaling`, default "none"). The score is the class's logit when the model
    ends in a softmax, so that a confident answer does not flatten the gradient to zero.
    Not thread-safe on one model (it traces it): callers serialise, as `heatmap_for` does.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected one (h, w, 3) image, got shape {image.shape}")
    if hasattr(model_or_bundle, "metadata"):
        scaling = scaling or model_or_bundle.metadata.input.scaling
        compiled = getattr(model_or_bundle, "compiled", None)
        if compiled is not None and layer is None and (compiled.can_explain or not _tensorflow_installed()):
            if not compiled.can_explain:
                raise ValueError(compiled.heatmap_problem)
            return _normalised(compiled.gradcam(scale_pixels(image, scaling), int(class_index)), image)
        model = model_or_bundle.model
    else:
        model = model_or_bundle
        scaling = scaling or "none"
    target = layer if layer is not None else find_target_layer(model)
    import_keras()
    import tensorflow as tf

    batch = tf.convert_to_tensor(scale_pixels(image[None], scaling))
    cam = _cam_function(model, target)(batch, tf.constant(int(class_index), tf.int32)).numpy()
    return _normalised(cam[0], image)


def _normalised(cam: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A raw class activation map resized to the image and scaled to [0, 1]."""
    cam = _resize(np.asarray(cam, dtype=np.float32), image.shape[1], image.shape[0])
    top = float(cam.max())
    return np.clip(cam / top, 0.0, 1.0) if top > 0 else np.zeros_like(cam)


def _tensorflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


# One traced function per (model, layer). Eager gradients are avoided on purpose: besides being
# slower, TensorFlow 2.21's eager backward pass with oneDNN corrupts the heap now and then.
_traced: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cam_function(model: Any, target: Any):
    import tensorflow as tf

    per_model = _traced.setdefault(model, {})
    key = id(target)
    if key in per_model:
        return per_model[key]
    head = output_layer(model)
    activation = getattr(head, "activation", None)
    softmax = activation is not None and getattr(activation, "__name__", "") == "softmax"

    @tf.function(reduce_retracing=True)
    def cam_fn(batch, class_index):
        captured: dict[str, Any] = {}
        original_call = target.call
        with tf.GradientTape() as tape:

            def recording_call(*args, **kwargs):
                out = original_call(*args, **kwargs)
                tape.watch(out)
                captured["features"] = out
                return out

            # Only while tracing: the graph keeps the capture, the model gets its layer back.
            target.call = recording_call
            if softmax:
                head.activation = _linear
            try:
                outputs = model(batch, training=False)
            finally:
                del target.call
                if softmax:
                    head.activation = activation
            if isinstance(outputs, (list, tuple)):
                outputs = outputs[0]
            score = tf.gather(outputs, class_index, axis=1)
            if not softmax:
                # Probabilities without a logit to hand: log p keeps the gradient alive near 1.
                score = tf.math.log(tf.clip_by_value(score, 1e-12, 1.0))
        features = captured.get("features")
        if features is None:
            raise ValueError(f"layer {target.name!r} did not run when the model was called")
        grads = tape.gradient(score, features)
        if grads is None:
            raise ValueError(f"the class score does not depend on layer {target.name!r}")
        weights = tf.reduce_mean(grads, axis=(1, 2))  # one weight per channel
        return tf.nn.relu(tf.reduce_sum(features * weights[:, None, None, :], axis=-1))

    per_model[key] = cam_fn
    return cam_fn


def _linear(x):
    return x


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    if values.shape == (height, width):
        return values
    resized = Image.fromarray(values.astype(np.float32), "F").resize((width, height), Image.Resampling.BILINEAR)
    return np.maximum(np.asarray(resized, dtype=np.float32), 0.0)


def heatmap_for(classifier: Any, prediction: Prediction, class_name: str | None = None) -> np.ndarray:
    """Grad-CAM for `prediction` (its predicted class unless `class_name` is given).

    Runs model code: call it from a worker thread, never the Tk thread. Thread-safe: it takes
    the classifier's lock, as the service's own methods do.
    """
    bundle = classifier.bundle()
    name = class_name or prediction.label
    if name not in bundle.classes:
        raise ValueError(f"{name!r} is not one of the model's classes {bundle.classes}")
    with classifier._lock:
        classifier.model_threads.add(threading.current_thread().name)
        return gradcam(bundle, prediction.processed_image, bundle.classes.index(name))


def model_view_box(size: tuple[int, int], spec: InputSpec) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]]:
    """Where the model's input lies on a picture of `size` (w, h) fitted by `spec.fit`.

    Returns (box on the picture, box on the model input), each (left, top, right, bottom) as
    fractions, mirroring `preprocessing.fit_image` (centre crop, letterbox pad, or stretch).
    """
    width, height = size
    ratio = width / height
    out_ratio = spec.width / spec.height
    whole = (0.0, 0.0, 1.0, 1.0)
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


def place_heatmap(heatmap: np.ndarray, size: tuple[int, int], spec: InputSpec) -> np.ndarray:
    """Map a heatmap over the model's input onto a picture of `size` (w, h).

    Returns an (h, w) array with NaN where the model did not look (outside a centre crop).
    """
    width, height = size
    picture_box, input_box = model_view_box(size, spec)
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
