"""What runs a model: one interface, `ModelRuntime`, and its two implementations.

`LiteRTRuntime` runs a compiled copy of the model (`litert_backend.CompiledModel`) without
TensorFlow; `KerasRuntime` runs the Keras model through traced `tf.function`s (not
`model.predict`, which rebuilds a data pipeline on every call and costs an order of magnitude
more per image). `bundle.load_bundle` chooses one when it opens a model; the service, heatmaps
and the unfamiliar-image features call the interface and never ask which they got.

Both give the same answers: probabilities to 1e-4, the same features (the global average of the
feature maps heatmaps read, `layers.find_target_layer`; the compiled model outputs those maps
too) and the same Grad-CAM (the compiled model differentiates its small head in numpy).

Runtimes are not thread-safe: the service serialises calls with its lock. This module imports
TensorFlow only inside `KerasRuntime`'s methods, on first use.
"""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retina_desktop.core.errors import ModelError
from retina_desktop.core.quiet import import_keras, keras_backend
from retina_desktop.inference.familiarity import pooled_features
from retina_desktop.inference.layers import find_target_layer, output_layer
from retina_desktop.inference.litert_backend import CompiledModel


@runtime_checkable
class ModelRuntime(Protocol):
    """What callers need from whatever runs a classifier. Batches are scaled float32
    (n, h, w, 3), as `preprocessing.prepare_batch` makes them."""

    name: str  # "keras" or "litert": shown by `info` and the self-test

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(height, width, 3)."""
        ...

    @property
    def num_classes(self) -> int: ...

    @property
    def feature_layer(self) -> str | None:
        """The name of the layer whose feature maps heatmaps and features read (None: none)."""
        ...

    @property
    def can_explain(self) -> bool:
        """Whether `gradcam` can answer without loading anything else."""
        ...

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes)."""
        ...

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities and, from the same model call, each image's pooled features
        (n, k) for the unfamiliar-image flag (`familiarity.pooled_features`); None when the
        model has no feature maps."""
        ...

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        """Pooled features (n, k) only, or None."""
        ...

    def gradcam(self, scaled: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM of one scaled image (h, w, 3), unnormalised, at the feature maps'
        resolution; raises `ValueError` when the model cannot be explained."""
        ...


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


class LiteRTRuntime:
    """A compiled (LiteRT) model. `keras_fallback` gives the Keras runtime of the same file for
    Grad-CAM when the compiled copy carries no heatmap head and TensorFlow is installed."""

    name = "litert"

    def __init__(self, compiled: CompiledModel, keras_fallback: Callable[[], ModelRuntime] | None = None) -> None:
        self.compiled = compiled
        self._keras_fallback = keras_fallback

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.compiled.input_shape

    @property
    def num_classes(self) -> int:
        return self.compiled.num_classes

    @property
    def feature_layer(self) -> str | None:
        layer = (self.compiled.manifest.get("heatmap") or {}).get("layer")
        return None if layer is None else str(layer)

    @property
    def can_explain(self) -> bool:
        return self.compiled.can_explain

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.compiled.predict(batch)

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        probs, maps = self.compiled.run(batch)
        return probs, None if maps is None else pooled_features(maps)

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        return self.predict_with_features(batch)[1]

    def gradcam(self, scaled: np.ndarray, class_index: int) -> np.ndarray:
        if self.compiled.can_explain:
            return self.compiled.gradcam(scaled, int(class_index))
        if self._keras_fallback is not None and tensorflow_installed():
            return self._keras_fallback().gradcam(scaled, class_index)
        raise ValueError(self.compiled.heatmap_problem)


class KerasRuntime:
    """A Keras model. `source` names its file in error messages. `input_shape` and
    `num_classes` raise `ModelError` for a model that does not take (batch, height, width, 3)
    images or does not output (batch, classes)."""

    name = "keras"

    def __init__(self, model: Any, source: str | Path = "") -> None:
        self.model = model
        self.source = str(source)
        self._infer: Callable[..., Any] | None = None
        self._serve: Callable[..., Any] | None = None
        self._target: Any = _UNSET

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return _input_shape(self.source, self.model)

    @property
    def num_classes(self) -> int:
        return _output_units(self.model)

    @property
    def target_layer(self) -> Any:
        """The layer heatmaps and features read, or None when the model has none."""
        if self._target is _UNSET:
            try:
                self._target = find_target_layer(self.model)
            except ValueError:
                self._target = None
        return self._target

    @property
    def feature_layer(self) -> str | None:
        return None if self.target_layer is None else self.target_layer.name

    @property
    def can_explain(self) -> bool:
        return self.target_layer is not None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if not _tensorflow_backend():  # JAX, on a training machine without TensorFlow
            return np.asarray(import_keras().ops.convert_to_numpy(self.model(batch, training=False)))
        if self._infer is None:
            self._infer = _traced_call(self.model)
        return np.asarray(self._infer(batch))

    def predict_with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # The serving function the LiteRT compiler converts, so both runtimes share one
        # definition of the features.
        if not _tensorflow_backend():
            from retina_desktop.inference.litert_export import call_with_features

            numpy = import_keras().ops.convert_to_numpy
            out = call_with_features(self.model, self.target_layer, np.asarray(batch, np.float32))
            maps = out.get("features")
            return numpy(out["probabilities"]), None if maps is None else pooled_features(numpy(maps))
        import_keras()
        import tensorflow as tf

        if self._serve is None:
            from retina_desktop.inference.litert_export import serving_function

            height, width, _ = self.input_shape
            self._serve = serving_function(tf, self.model, self.target_layer, height, width)
        out = self._serve(tf.convert_to_tensor(batch, tf.float32))
        maps = out.get("features")
        return out["probabilities"].numpy(), None if maps is None else pooled_features(maps.numpy())

    def features(self, batch: np.ndarray) -> np.ndarray | None:
        return self.predict_with_features(batch)[1]

    def gradcam(self, scaled: np.ndarray, class_index: int, *, layer: Any = None) -> np.ndarray:
        """As `ModelRuntime.gradcam`; `layer` reads another layer than the default target."""
        target = layer if layer is not None else find_target_layer(self.model)
        import_keras()
        import tensorflow as tf

        batch = tf.convert_to_tensor(np.asarray(scaled, dtype=np.float32)[None])
        cam = _cam_function(self.model, target)(batch, tf.constant(int(class_index), tf.int32)).numpy()
        return cam[0]


_UNSET = object()


def _output_units(model: Any) -> int:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else model.output_shape
    if len(shape) != 2:
        raise ModelError(f"The model's output has shape {tuple(shape)}; expected (batch, classes)")
    return int(shape[-1])


def _input_shape(source: str, model: Any) -> tuple[int, int, int]:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ModelError(f'"{source}" takes input of shape {shape}; expected (batch, height, width, 3) images')
    return int(shape[1]), int(shape[2]), int(shape[3])


def _tensorflow_backend() -> bool:
    """Whether Keras runs on TensorFlow (the app, always; training may run on JAX)."""
    return keras_backend() == "tensorflow"


def _traced_call(model: Any):
    import_keras()
    import tensorflow as tf

    # One traced graph per batch size; reduce_retracing keeps it to a generic shape after that.
    @tf.function(reduce_retracing=True)
    def infer(batch):
        return model(batch, training=False)

    return infer


# One traced Grad-CAM function per (model, layer), kept while the model lives. Eager gradients
# are avoided on purpose: besides being slower, TensorFlow 2.21's eager backward pass with
# oneDNN corrupts the heap now and then.
_traced: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cam_function(model: Any, target: Any):
    """Grad-CAM as a traced function of (batch, class index). Our models expose the target
    block as a tensor, but Teachable Machine exports nest it where the outer graph cannot reach
    it, so its activations are captured while the model runs, by wrapping the layer's `call`
    (which works for any nesting); the layer is restored before returning. The score is the
    class's logit when the model ends in a softmax, so that a confident answer does not flatten
    the gradient to zero."""
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
