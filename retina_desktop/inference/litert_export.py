"""Compiling a Keras model to LiteRT (TensorFlow Lite), for `litert_backend` to run without TF.

`compile_program` is the one compile pipeline of every model kind: freeze the kind's serving
function into constants, convert with the default float32 kernels (no quantisation: outputs must
equal Keras's), write the `.tflite` and its manifest, and check the compiled copy against Keras
on a seeded batch before keeping it. The manifest records the SHA-256 of the source model file,
so the service can tell a compiled model that is out of date with its `.h5`, and of the compiled
file, so that a `.tflite` changed afterwards is refused (`litert_backend.compiled_problem`).

A classifier's serving function (`compile_model`) returns the probabilities with the heatmap
layer's output captured (the same wrapping of the layer's `call` that the Keras runtime's
Grad-CAM uses, so it works for models nested in Sequentials such as Teachable Machine exports);
generators supply theirs from `generator_export`.

This module imports TensorFlow (inside functions): it runs at export time, or on first open of
a new model when TensorFlow is installed; never in the packaged app.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import ModelError
from retina_desktop.core.quiet import import_keras, stderr_captured
from retina_desktop.imaging.preprocessing import scale_pixels
from retina_desktop.inference.layers import find_target_layer, iter_layers, output_layer
from retina_desktop.inference.litert_backend import (
    FORMAT,
    CompiledModel,
    Head,
    cached_path_for,
    encode_array,
    file_sha256,
    manifest_path_for,
)

log = logging.getLogger(__name__)
# Compiled and Keras outputs must agree this closely, or the compiled model is not written.
TOLERANCE = 1e-4


def compile_program(serve: Any, source: Path, out: Path, *, fields: dict[str, Any],
                    check: Callable[[Path, dict[str, Any]], None], sha256: str | None = None) -> Path:
    """The one compile pipeline every model kind goes through: freeze the traced `serve`
    (a tf.function the kind supplies), convert it with the default float32 kernels (no
    quantisation: outputs must equal Keras's), write the `.tflite` to `out` with its manifest
    (`fields` are the kind's own entries; the hashes of `source` and of the compiled bytes are
    recorded for every kind), then `check(out, manifest)` it against Keras. A copy that fails
    the check is deleted. Raises `ModelError`."""
    import tensorflow as tf

    try:
        with stderr_captured():  # the converter's MLIR notices go to fd 2
            from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

            frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
            flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([frozen]).convert()
    except Exception as err:  # the converter raises many types
        raise ModelError(f'"{source}" could not be compiled for LiteRT: {err}') from err
    manifest = {
        "format": FORMAT,
        "source": source.name,
        "source_sha256": sha256 or file_sha256(source),
        # The compiled bytes too: a .tflite changed afterwards is refused (find_compiled).
        "compiled_sha256": hashlib.sha256(flatbuffer).hexdigest(),
        **fields,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(out, lambda tmp: Path(tmp).write_bytes(flatbuffer))
    with atomic_write(manifest_path_for(out), encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    try:
        check(out, manifest)
    except Exception:
        out.unlink(missing_ok=True)
        manifest_path_for(out).unlink(missing_ok=True)
        raise
    return out


def compile_model(
    model: Any,
    source: Path,
    out: Path,
    *,
    scaling: str = "none",
    sha256: str | None = None,
) -> Path:
    """Compile the classifier `model` (loaded from `source`) to `out` (`.tflite`) with its
    manifest beside it: its serving function returns the probabilities and the heatmap layer's
    feature maps, and the manifest carries the small head after them (numpy Grad-CAM).

    `scaling` is the model's pixel scaling, used for the self-check on a seeded batch of
    images. Raises `ModelError` when the model cannot be converted or the compiled copy
    disagrees with Keras by more than `TOLERANCE`.
    """
    keras = import_keras()
    import tensorflow as tf

    height, width = (int(v) for v in model.inputs[0].shape[1:3])
    try:
        target = find_target_layer(model)
    except ValueError as err:
        target, head, problem = None, None, str(err)
    else:
        head, problem = _head_spec(model, target)
    fields = {
        "input_shape": [height, width, 3],
        "num_classes": int(model.outputs[0].shape[-1]),
        "heatmap": (
            {"layer": target.name, **head} if head else {"layer": getattr(target, "name", None), "problem": problem}
        ),
        "keras": keras.__version__,
    }
    return compile_program(serving_function(tf, model, target, height, width), source, out, fields=fields,
                           check=lambda compiled, manifest: _self_check(model, compiled, manifest, scaling),
                           sha256=sha256)


def compile_to_cache(model: Any, source: Path, *, scaling: str = "none", sha256: str | None = None) -> Path:
    """Compile into the user's cache, named by the source file's hash (first open of a model)."""
    sha256 = sha256 or file_sha256(source)
    return compile_model(model, source, cached_path_for(sha256), scaling=scaling, sha256=sha256)


def serving_function(tf, model: Any, target: Any, height: int, width: int):
    """A tf.function returning the probabilities and (when there is a target) its feature maps."""

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, 3], tf.float32, name="image")])
    def serve(image):
        return call_with_features(model, target, image)  # traced once: the layer is wrapped only then

    return serve


def call_with_features(model: Any, target: Any, image) -> dict[str, Any]:
    """{"probabilities", and "features": the output of `target` (when not None)} of one call of
    `model` on `image`, in whatever backend runs it. The feature maps are caught as the layer
    returns them (its `call` wrapped for this call only): a Teachable Machine export nests the
    layer where the outer graph cannot reach it."""
    if target is None:
        return {"probabilities": _first(model(image, training=False))}
    captured: dict[str, Any] = {}
    original_call = target.call

    def recording_call(*args, **kwargs):
        out = original_call(*args, **kwargs)
        captured["features"] = out
        return out

    target.call = recording_call
    try:
        probabilities = _first(model(image, training=False))
    finally:
        del target.call  # the model gets its layer back
    return {"probabilities": probabilities, "features": captured["features"]}


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _activation_name(fn: Any) -> str | None:
    name = getattr(fn, "__name__", None)
    return name if name in ("linear", "relu", "relu6", "sigmoid", "tanh", "softmax") else None


def _head_spec(model: Any, target: Any) -> tuple[dict[str, Any] | None, str]:
    """The layers after `target` as manifest operations, or (None, why not)."""
    layers = list(iter_layers(model))
    index = next(i for i, layer in enumerate(layers) if layer is target)
    ops: list[dict[str, Any]] = []
    for layer in layers[index + 1 :]:
        kind = type(layer).__name__
        if kind in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "InputLayer"):
            continue  # identity at inference
        if kind == "GlobalAveragePooling2D" and not getattr(layer, "keepdims", False):
            ops.append({"op": "global_average_pool"})
        elif kind == "Flatten":
            ops.append({"op": "flatten"})
        elif kind == "Dense":
            act = _activation_name(layer.activation)
            if act is None:
                return None, f"its layer {layer.name!r} uses an activation the compiled heatmap does not know"
            kernel, *rest = layer.get_weights()
            bias = rest[0] if rest else np.zeros(kernel.shape[-1], np.float32)
            ops.append({"op": "dense", "activation": act, "kernel": encode_array(kernel), "bias": encode_array(bias)})
        elif kind == "Activation" and _activation_name(layer.activation):
            ops.append({"op": "activation", "activation": _activation_name(layer.activation)})
        elif kind == "Softmax":
            ops.append({"op": "activation", "activation": "softmax"})
        elif (
            kind == "ReLU"
            and not float(getattr(layer, "negative_slope", 0) or 0)
            and not float(getattr(layer, "threshold", 0) or 0)
        ):
            max_value = getattr(layer, "max_value", None)
            if max_value not in (None, 6, 6.0):
                return None, f"its layer {layer.name!r} (ReLU with max {max_value}) is not supported"
            ops.append({"op": "activation", "activation": "relu" if max_value is None else "relu6"})
        elif kind == "BatchNormalization":
            gamma, beta, mean, var = _bn_weights(layer)
            scale = gamma / np.sqrt(var + layer.epsilon)
            ops.append({"op": "affine", "scale": encode_array(scale), "offset": encode_array(beta - mean * scale)})
        else:
            return None, (
                f"the layers after {target.name!r} include {kind} ({layer.name!r}), "
                "which the compiled heatmap does not know"
            )
    reducers = [i for i, op in enumerate(ops) if op["op"] in ("global_average_pool", "flatten")]
    if len(reducers) != 1 or any(op["op"] == "dense" for op in ops[: reducers[0]]):
        return None, f"the layers after {target.name!r} do not pool its feature maps once before the dense layers"
    # Mirror the Keras runtime's Grad-CAM: a final softmax is dropped, the score is the logit.
    last = output_layer(model)
    softmax = _activation_name(getattr(last, "activation", None)) == "softmax" or type(last).__name__ == "Softmax"
    if softmax and ops[-1].get("activation") == "softmax":
        if ops[-1]["op"] == "dense":
            ops[-1]["activation"] = "linear"
        else:
            ops.pop()
        return {"head": ops, "score": "logit"}, ""
    return {"head": ops, "score": "log_probability"}, ""


def _bn_weights(layer: Any) -> tuple[np.ndarray, ...]:
    weights = {w.path.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
    size = int(weights["moving_mean"].shape[0])
    gamma = weights.get("gamma", np.ones(size))
    beta = weights.get("beta", np.zeros(size))
    return gamma, beta, weights["moving_mean"], weights["moving_variance"]


def _self_check(model: Any, out: Path, manifest: dict[str, Any], scaling: str) -> None:
    """Compiled probabilities (and the numpy head) must match Keras on a seeded batch."""
    height, width, _ = manifest["input_shape"]
    pixels = np.random.default_rng(0).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    batch = scale_pixels(pixels, scaling)
    expected = np.asarray(_first(model(batch, training=False)), dtype=np.float64)
    compiled = CompiledModel(out, manifest)
    got, features = compiled.run(batch)
    worst = float(np.abs(got - expected).max())
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise ModelError(
            f'The compiled copy of "{manifest["source"]}" differs from Keras by {worst:.2g} (> {TOLERANCE:g})'
        )
    heat = manifest["heatmap"]
    if heat.get("head") is not None and features is not None:
        head = Head(heat["head"], heat["score"])
        for sample, probs in zip(features, expected):
            output, _ = head.forward(sample)
            if heat["score"] == "logit":
                output = np.exp(output - output.max())
                output /= output.sum()
            if np.abs(output - probs).max() > TOLERANCE:
                # The head was misread: keep the compiled model, drop only its heatmap.
                log.warning("heatmap head of %s does not reproduce the model; heatmaps disabled", out)
                manifest["heatmap"] = {
                    "layer": heat.get("layer"),
                    "problem": "its head could not be reproduced outside TensorFlow",
                }
                with atomic_write(manifest_path_for(out), encoding="utf-8") as handle:
                    json.dump(manifest, handle, indent=1)
                return
