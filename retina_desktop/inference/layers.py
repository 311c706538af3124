"""Finding layers in a Keras model: the leaf layers in call order, the layer heatmaps and the
unfamiliar-image features read, and the output layer.

Duck-typed on Keras's layer attributes (`layers`, `name`, `output`), so importing this module
imports no TensorFlow. Used by the Keras runtime (`runtime.KerasRuntime`), by the LiteRT
compiler (`litert_export`) and by training.

Our models name their last convolutional block `last_conv`; Teachable Machine exports nest a
MobileNetV2 inside Sequential models, so the walk descends into nested models and, without a
`last_conv`, takes the last layer with a 4-D output.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

TARGET_LAYER = "last_conv"


def iter_layers(model: Any) -> Iterator[Any]:
    """Every leaf layer of `model` in call order, descending into nested models."""
    for layer in getattr(model, "layers", []):
        if getattr(layer, "layers", None):
            yield from iter_layers(layer)
        else:
            yield layer


def output_rank(layer: Any) -> int | None:
    """The rank of a layer's symbolic output (4 for feature maps), None when it has none."""
    try:
        return len(layer.output.shape)
    except Exception:  # a layer never called in a graph has no symbolic output
        return None


def find_target_layer(model: Any) -> Any:
    """The layer whose activations Grad-CAM reads: `last_conv`, else the last 4-D output.

    Raises `ValueError` when the model has no such layer."""
    layers = list(iter_layers(model))
    for layer in layers:
        if layer.name == TARGET_LAYER:
            return layer
    for layer in reversed(layers):
        if output_rank(layer) == 4:
            return layer
    raise ValueError(f"Model {getattr(model, 'name', '?')!r} has no convolutional (4-D) layer for a heatmap")


def output_layer(model: Any) -> Any:
    """The model's last leaf layer (the model itself when it has no layers)."""
    layers = list(iter_layers(model))
    return layers[-1] if layers else model
