"""Loading legacy HDF5 (`.h5`) Keras model files into Keras 3.

This module owns one job: turn a `.h5` model file into a working Keras 3 model whose predictions
equal the original's. Files written by Keras 3 go to Keras's own loader. Files written by Keras 2
(tf.keras, tf_keras, Teachable Machine exports, student projects) do not load in Keras 3 as they
are, because their architecture JSON speaks Keras 2:

- layer entries carry a `module` of Keras 2 (`tf_keras.src.engine.functional`), so Keras 3
  cannot find the class `Functional`;
- `DepthwiseConv2D` (MobileNet, so every Teachable Machine export) has `groups: 1`, an argument
  Keras 3 refuses;
- a Functional model's single input and output are written as one-element lists, which Keras 3
  keeps as lists, so a Functional nested in a Sequential (MobileNetV2 or VGG16 as a backbone)
  hands `[tensor]` to the next layer and `Flatten` fails;
- dtype policies, `batch_input_shape` and the older `Model` class name are Keras 2 spellings.

So for those files the JSON is rewritten into what Keras 3 reads (`upgrade_config`), the
architecture is rebuilt with Keras 3, and the weights are copied from the file's `model_weights`
group with h5py: layer by layer, by name where the stored names say which layer a weight belongs
to, else in stored order, with every shape checked. Keras's safe mode is applied unchanged, so a
`Lambda` layer is refused exactly where `keras.saving.load_model` refuses it.

Keras is imported inside functions only: the app must start without importing TensorFlow.
"""

from __future__ import annotations

import json
import logging
import pathlib
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from retina_desktop.core.errors import ModelError, UnsafeModelError

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# Keras 2 wrote `groups` for every convolution; these Keras 3 layers take no such argument.
_NO_GROUPS_LAYERS = {
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
}
# Keras 2 BatchNormalization options that never change inference, unknown to Keras 3.
_BN_KERAS2_ONLY = ("fused", "virtual_batch_size", "adjustment")


def load_h5_model(path: pathlib.Path, *, safe_mode: bool = True) -> keras.Model:
    """Load a whole-model `.h5` file (Keras 2 or Keras 3) as an uncompiled Keras 3 model.

    Raises `ModelError` naming the file when it is not HDF5, holds only weights, cannot be
    rebuilt, or its weights do not fit its architecture; `UnsafeModelError` when safe mode
    refuses a layer that would run code.
    """
    path = pathlib.Path(path)
    config, keras_version = _read_header(path)
    if keras_version.startswith("3."):
        try:
            return _load_with_keras(path, safe_mode)
        except Exception as err:
            if safe_mode and _has_lambda(config):
                raise _unsafe_error(path) from err
            # Keras 3 wrote it yet cannot read it back: rebuilding may still work.
            log.info("Keras could not load %s (%s); rebuilding it", path, err)
    return _rebuild(path, config, safe_mode)


def upgrade_config(config: Any) -> Any:
    """Return a copy of a Keras 2 architecture config (parsed JSON) in a form Keras 3 reads."""
    if isinstance(config, list):
        return [upgrade_config(item) for item in config]
    if not isinstance(config, dict):
        return config
    node = {key: upgrade_config(value) for key, value in config.items()}
    if "class_name" not in node or "config" not in node:
        return node
    class_name = node["class_name"]
    if class_name in ("Policy", "DTypePolicy"):
        # A dtype policy: Keras 3 takes its name ("float32", "mixed_float16") anywhere.
        return node["config"]["name"]
    # Without `module` Keras 3 takes its legacy path, which resolves classes by name; the
    # module names Keras 2 wrote (tf_keras.src...) do not exist here.
    node.pop("module", None)
    node.pop("registered_name", None)
    if class_name == "Model":
        node["class_name"] = "Functional"
    if class_name == "Sequential" and isinstance(node["config"], list):
        node["config"] = {"name": "sequential", "layers": node["config"]}  # Keras <= 2.1
    layer = node["config"]
    if isinstance(layer, dict):
        _upgrade_layer_config(node["class_name"], layer)
    return node


def _upgrade_layer_config(class_name: str, layer: dict[str, Any]) -> None:
    """Rewrite, in place, the Keras 2 spellings in one layer's own config."""
    if class_name in _NO_GROUPS_LAYERS and layer.get("groups", 1) == 1:
        layer.pop("groups", None)
    if class_name == "BatchNormalization":
        for key in _BN_KERAS2_ONLY:
            if not layer.get(key):
                layer.pop(key, None)
    batch_input_shape = layer.pop("batch_input_shape", None)
    if batch_input_shape is not None:
        if class_name == "InputLayer":
            layer["batch_shape"] = batch_input_shape
        else:
            # Keras 3 builds an Input of this shape for a Sequential's first layer; the batch
            # size is not part of it.
            layer["input_shape"] = batch_input_shape[1:]
    if class_name == "VarianceScaling" and layer.get("distribution") == "normal":
        layer["distribution"] = "truncated_normal"  # what Keras 2 meant by "normal"
    for key in ("input_layers", "output_layers"):
        # Keras 2 always wrote lists; one input or output meant a plain tensor, not a list.
        value = layer.get(key)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            layer[key] = value[0]


def _read_header(path: pathlib.Path) -> tuple[dict[str, Any], str]:
    """Return the file's architecture config and the Keras version that wrote it."""
    if not path.is_file():
        raise ModelError(f'Model file not found: "{path}"')
    try:
        with h5py.File(path, "r") as h5:
            raw_config = h5.attrs.get("model_config")
            weights_only = "layer_names" in h5.attrs
            raw_version = h5.attrs.get("keras_version", "")
    except OSError as err:
        raise ModelError(
            f'"{path}" is not an HDF5 (.h5) model file (h5py cannot open it).'
        ) from err
    if raw_config is None:
        what = "only weights (saved with save_weights)" if weights_only else "no model"
        raise ModelError(
            f'"{path}" holds {what}, not a model architecture (no "model_config"): '
            "save the whole model with model.save()."
        )
    try:
        config = json.loads(_text(raw_config))
    except (ValueError, UnicodeDecodeError) as err:
        raise ModelError(f'The model architecture stored in "{path}" is not valid JSON.') from err
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelError(f'The model architecture stored in "{path}" is not a Keras model config.')
    return config, _text(raw_version)


def _text(value: Any) -> str:
    """HDF5 string attributes come back as str or bytes depending on who wrote them."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return str(value)


def _load_with_keras(path: pathlib.Path, safe_mode: bool) -> keras.Model:
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)


def _rebuild(path: pathlib.Path, config: dict[str, Any], safe_mode: bool) -> keras.Model:
    """Build the architecture from the upgraded config, then copy the weights in."""
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    root = upgrade_config(config)
    # The root goes through Keras 3's public deserializer (which applies safe mode); giving it
    # the module "keras" lets that deserializer find Sequential and Model. Everything nested
    # has no module and so takes Keras's legacy path, as in keras.saving.load_model.
    root_class = "Model" if root["class_name"] == "Functional" else root["class_name"]
    if root_class not in ("Sequential", "Model"):
        raise ModelError(
            f'"{path}" holds a "{root["class_name"]}", not a Sequential or Functional model.'
        )
    root = {"module": "keras", "class_name": root_class, "config": root["config"]}
    try:
        model = keras.saving.deserialize_keras_object(root, safe_mode=safe_mode)
    except Exception as err:
        if safe_mode and _has_lambda(config):
            raise _unsafe_error(path) from err
        raise ModelError(
            f'Cannot rebuild the model in "{path}" with Keras {keras.__version__}: {err}'
        ) from err
    try:
        with h5py.File(path, "r") as h5:
            _load_weights(h5, model)
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ModelError(f'The weights in "{path}" do not match its architecture: {err}') from err
    return model


def _load_weights(h5: h5py.File, model: keras.Model) -> None:
    """Copy every stored weight into `model`; raise ValueError on any mismatch."""
    from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group
    from keras.src.saving.saving_lib import safe_get_h5_group

    # Keras's own guarded accessors: they refuse links to other files and shape bombs.
    weights_group = safe_get_h5_group(h5, "model_weights")
    stored: dict[str, h5py.Group] = {}
    for name in load_attributes_from_hdf5_group(weights_group, "layer_names"):
        group = safe_get_h5_group(weights_group, name)
        if load_attributes_from_hdf5_group(group, "weight_names"):
            stored[name] = group
    layers = {layer.name: layer for layer in model.layers if _legacy_weights(layer)}
    if set(stored) != set(layers):
        raise ValueError(
            f"the file has weights for layers {sorted(stored)}, "
            f"the architecture for layers {sorted(layers)}"
        )
    if "top_level_model_weights" in weights_group and load_attributes_from_hdf5_group(
        safe_get_h5_group(weights_group, "top_level_model_weights"), "weight_names"
    ):
        raise ValueError("weights owned by the model itself (not by a layer) are not supported")
    for name, layer in layers.items():
        names, values = _read_layer_weights(stored[name])
        _assign_layer(layer, names, values)


def _read_layer_weights(group: h5py.Group) -> tuple[list[str], list[np.ndarray]]:
    from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group
    from keras.src.saving.saving_lib import safe_get_h5_dataset

    names = load_attributes_from_hdf5_group(group, "weight_names")
    return names, [np.asarray(safe_get_h5_dataset(group, name)) for name in names]


def _legacy_weights(layer: keras.Layer) -> list:
    """The order in which `.h5` files store a layer's weights: trainable ones first."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _assign_layer(layer: keras.Layer, names: list[str], values: list[np.ndarray]) -> None:
    """Set one top-level layer's weights (all of a nested model's, for a nested model)."""
    targets = _legacy_weights(layer)
    if len(targets) != len(values):
        raise ValueError(
            f"layer {layer.name!r} has {len(targets)} weights, the file {len(values)}"
        )
    pairs = _pair_by_layer_name(layer, targets, names)
    if pairs is None:
        # The stored names do not say which layer owns each weight (renamed scopes in old
        # graph-mode files): use the stored order, which is what Keras itself does.
        pairs = list(range(len(values)))
    for variable, index in zip(targets, pairs):
        value = values[index]
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"weight {names[index]!r} of layer {layer.name!r} has shape {value.shape}, "
                f"the architecture expects {tuple(variable.shape)}"
            )
    for variable, index in zip(targets, pairs):
        variable.assign(values[index])


def _pair_by_layer_name(
    layer: keras.Layer, targets: list, names: list[str]
) -> list[int] | None:
    """For each target variable, the index of its stored value, matched by owning layer name.

    Stored names look like "block_1_expand_BN/moving_mean:0" (Keras 2) or
    "sequential/dense/kernel" (Keras 3). Within one owning layer the stored order is kept.
    Returns None where the names cannot settle it (unknown or ambiguous layer names).
    """
    owners = _owner_names(layer)
    leaf_names = [leaf.name for leaf in _leaf_layers(layer) if leaf.weights]
    if len(leaf_names) != len(set(leaf_names)):
        return None  # two nested layers share a name
    known = set(leaf_names)
    stored_by_owner: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        parts = [part for part in name.split("/")[:-1] if part in known]
        if not parts:
            return None
        stored_by_owner.setdefault(parts[-1], []).append(index)
    pairs: list[int] = []
    used: dict[str, int] = {}
    for variable in targets:
        owner = owners.get(id(variable))
        if owner is None:
            return None
        slots = stored_by_owner.get(owner, [])
        position = used.get(owner, 0)
        if position >= len(slots):
            return None
        pairs.append(slots[position])
        used[owner] = position + 1
    if sum(used.values()) != len(names):
        return None
    return pairs


def _leaf_layers(layer: keras.Layer) -> list:
    """The layers that own variables: nested models are opened up, other layers are leaves."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    leaves = []
    for child in children:
        leaves.extend(_leaf_layers(child))
    return leaves


def _owner_names(layer: keras.Layer) -> dict[int, str]:
    """Map id(variable) to the name of the leaf layer that owns it."""
    owners: dict[int, str] = {}
    for leaf in _leaf_layers(layer):
        for variable in leaf.weights:
            owners.setdefault(id(variable), leaf.name)
    return owners


def _has_lambda(config: Any) -> bool:
    # Only Lambda carries stored Python code; TFOpLambda names a TF op, and Keras 3 cannot
    # rebuild it at all, so it gets the plain "cannot rebuild" message.
    if isinstance(config, list):
        return any(_has_lambda(item) for item in config)
    if isinstance(config, dict):
        if config.get("class_name") == "Lambda":
            return True
        return any(_has_lambda(value) for value in config.values())
    return False


def _unsafe_error(path: pathlib.Path) -> UnsafeModelError:
    return UnsafeModelError(
        f'"{path}" contains a Lambda layer, which runs Python code when loaded; '
        "refused in safe mode. Load it only if you trust its source."
    )
