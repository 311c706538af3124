"""Running a compiled model (LiteRT / TensorFlow Lite) without TensorFlow, heatmaps included.

A Keras model `<stem>.h5` is compiled (by `retina_desktop.inference.litert_export`, at export time or on
first open) to `<stem>.tflite` plus a manifest `<stem>.tflite.json`. The manifest records the
SHA-256 of the model file it came from, so a compiled model is used only while it is up to date
with that file; one compiled on first open lives in the user's cache folder, named by that hash.
It also records the SHA-256 of the compiled file itself: a `.tflite` whose bytes changed after
compiling answers anything (3,000 changed bytes turned "unsure: normal" into a confident
disease), so it is refused with one warning and the model file serves instead. Manifests written
before that hash was recorded carry none and are used as they are (re-export to add it).

The compiled model has two outputs: the class probabilities and the feature maps of the layer
that heatmaps read. The manifest carries the few small layers between those feature maps and
the output (global pooling, dense layers), so Grad-CAM is computed here in numpy: the gradient
of a class score with respect to the feature maps through such a head has a closed form. For
our models (pooling, then one softmax Dense) that is exactly CAM; for Teachable Machine exports
(pooling, Dense+ReLU, Dense) it is the same Grad-CAM as `heatmaps.gradcam` computes with
TensorFlow.

Nothing here imports TensorFlow or Keras: this is the path the packaged app runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.errors import ModelError
from retina_desktop.core.paths import user_cache_dir
from retina_desktop.core.quiet import stderr_captured

log = logging.getLogger(__name__)

FORMAT = "retina-desktop-compiled/1"
COMPILED_SUFFIX = ".tflite"
MANIFEST_SUFFIX = ".tflite.json"
# Filled in once per process: is the LiteRT runtime importable at all?
_available: bool | None = None
# Hashing a model file costs milliseconds per 10 MB; remember it while the file is unchanged.
_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def litert_available() -> bool:
    """Whether the LiteRT interpreter (`ai-edge-litert`) can be imported here."""
    global _available
    if _available is None:
        try:
            from ai_edge_litert.interpreter import Interpreter  # noqa: F401

            _available = True
        except ImportError:
            _available = False
    return _available


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content (cached per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    with _hash_lock:
        _hash_cache[key] = value
    return value


def compiled_path_for(model_path: Path, folder: Path | None = None) -> Path:
    """Where the compiled copy of `model_path` lies beside it (or in `folder`)."""
    return (folder or model_path.parent) / (model_path.stem + COMPILED_SUFFIX)


def manifest_path_for(compiled: Path) -> Path:
    return compiled.with_name(compiled.stem + MANIFEST_SUFFIX)


def cache_dir() -> Path:
    """The user's folder of models compiled on first open, one per model-file hash."""
    return user_cache_dir() / "compiled"


def cached_path_for(sha256: str) -> Path:
    return cache_dir() / f"{sha256}{COMPILED_SUFFIX}"


def read_manifest(compiled: Path) -> dict[str, Any] | None:
    """The manifest of a compiled model, or None when it is missing or unreadable."""
    try:
        manifest = json.loads(manifest_path_for(compiled).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def find_compiled(model_path: Path, sha256: str | None = None, problems: list[str] | None = None) -> Path | None:
    """The compiled model made from exactly this model file (beside it, else in the cache).

    A compiled file whose manifest names another hash is stale (the `.h5` changed since) and
    is ignored. One whose own bytes changed since compiling (`compiled_problem`) is refused:
    its one-line reason is appended to `problems` when given, else logged. Where the model file
    itself is absent in the packaged app (which ships compiled copies only), the copy beside
    where it would be is used when its bytes are those its manifest recorded.
    """
    if not Path(model_path).exists():
        return _shipped_copy(Path(model_path), problems) if ships_compiled_only() else None
    sha256 = sha256 or file_sha256(model_path)
    for candidate in (compiled_path_for(model_path), cached_path_for(sha256)):
        if candidate.is_file():
            manifest = read_manifest(candidate)
            if manifest is not None and manifest.get("source_sha256") == sha256:
                problem = compiled_problem(candidate, manifest)
                if not problem:
                    return candidate
                _report(problem, problems)
    return None


def _shipped_copy(model_path: Path, problems: list[str] | None) -> Path | None:
    """The compiled copy shipped in place of `model_path`, checked by the hash of its own bytes
    (a manifest that records none cannot vouch for them: refused)."""
    candidate = compiled_path_for(model_path)
    manifest = read_manifest(candidate) if candidate.is_file() else None
    if manifest is None:
        return None
    if not manifest.get("compiled_sha256"):
        problem = f'Compiled model "{candidate}" records no hash of its bytes and its model file is absent; not used'
    else:
        problem = compiled_problem(candidate, manifest)
    if not problem:
        return candidate
    _report(problem, problems)
    return None


def _report(problem: str, problems: list[str] | None) -> None:
    if problems is not None:
        problems.append(problem)  # the caller says it, once
    else:
        log.warning("%s", problem)


def ships_compiled_only() -> bool:
    """Whether this is the packaged app, which ships compiled copies without their model files.
    From a checkout, a compiled copy whose model file is gone (a run folder copied without its
    .h5, a model retrained since) is not used: nothing ties it to the sidecar beside it."""
    return bool(getattr(sys, "frozen", False))


def model_available(model_path: str | os.PathLike) -> bool:
    """Whether the model at `model_path` can be opened: its file, or (in the packaged app,
    which ships compiled copies only) its compiled copy beside where the file would be."""
    path = Path(model_path)
    return path.is_file() or (ships_compiled_only() and compiled_path_for(path).is_file())


def source_sha256(model_path: str | os.PathLike) -> str:
    """The identity of a model file (what its compiled copies and its familiarity record are
    keyed by): its SHA-256, or where only its compiled copy was shipped, the hash that copy's
    manifest recorded for it."""
    path = Path(model_path)
    if path.exists() or not ships_compiled_only():
        return file_sha256(path)
    manifest = read_manifest(compiled_path_for(path))
    recorded = manifest.get("source_sha256") if manifest else None
    if not recorded:
        raise ModelError(f'Model file not found: "{path}"')
    return str(recorded)


def compiled_problem(compiled: Path, manifest: dict[str, Any]) -> str:
    """Why `compiled` must not be run ("" when it may): its bytes differ from those its manifest
    recorded when it was compiled. A manifest that records no hash (older exports) passes."""
    recorded = manifest.get("compiled_sha256")
    if not recorded:
        return ""
    try:
        actual = file_sha256(compiled)
    except OSError as err:
        return f'Compiled model "{compiled}" cannot be read ({err.strerror or err}); not used'
    if actual != recorded:
        return (
            f'Compiled model "{compiled}" is not the file its manifest recorded (its bytes changed after '
            "compiling); not used"
        )
    return ""


# ---- arrays in JSON -------------------------------------------------------------------------


def encode_array(values: np.ndarray) -> dict[str, Any]:
    """A float32 array as JSON: shape plus little-endian bytes in base64."""
    values = np.ascontiguousarray(values, dtype="<f4")
    return {"shape": list(values.shape), "float32_base64": base64.b64encode(values.tobytes()).decode("ascii")}


def decode_array(data: dict[str, Any]) -> np.ndarray:
    raw = base64.b64decode(data["float32_base64"])
    return np.frombuffer(raw, dtype="<f4").reshape(data["shape"]).astype(np.float32)


# ---- the head between the feature maps and the output, in numpy ------------------------------

HEAD_OPS = ("global_average_pool", "flatten", "dense", "activation", "affine")


def _activate(name: str, x: np.ndarray) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "relu6":
        return np.clip(x, 0.0, 6.0)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if name == "tanh":
        return np.tanh(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"activation {name!r} is not supported by the compiled heatmap head")


def _activation_grad(name: str, pre: np.ndarray, post: np.ndarray, grad: np.ndarray) -> np.ndarray:
    if name == "linear":
        return grad
    if name == "relu":
        return grad * (pre > 0)
    if name == "relu6":
        return grad * ((pre > 0) & (pre < 6))
    if name == "sigmoid":
        return grad * post * (1.0 - post)
    if name == "tanh":
        return grad * (1.0 - post**2)
    if name == "softmax":  # one sample: J^T g = p * (g - <g, p>)
        return post * (grad - np.sum(grad * post, axis=-1, keepdims=True))
    raise ValueError(f"activation {name!r} is not supported by the compiled heatmap head")


class Head:
    """The layers after the heatmap's feature maps, run forward and backward in numpy.

    `ops` is the manifest's list: `{"op": "global_average_pool"}`, `{"op": "flatten"}`,
    `{"op": "dense", "activation": a, "kernel": ..., "bias": ...}`, `{"op": "activation",
    "activation": a}`, `{"op": "affine", "scale": ..., "offset": ...}` (inference-time batch
    normalisation). `score` is "logit" (the softmax at the end is dropped, as
    `heatmaps.gradcam` does) or "log_probability".
    """

    def __init__(self, ops: list[dict[str, Any]], score: str) -> None:
        self.ops = []
        for op in ops:
            kind = op["op"]
            if kind not in HEAD_OPS:
                raise ValueError(f"head operation {kind!r} is not supported")
            entry = {"op": kind, "activation": op.get("activation", "linear")}
            for key in ("kernel", "bias", "scale", "offset"):
                if key in op:
                    entry[key] = decode_array(op[key]) if isinstance(op[key], dict) else np.asarray(op[key], np.float32)
            self.ops.append(entry)
        if score not in ("logit", "log_probability"):
            raise ValueError(f"unknown heatmap score {score!r}")
        self.score = score

    def forward(self, features: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
        """Output of the head for one sample's feature maps (h, w, k), with what backward needs."""
        x = features.astype(np.float64)
        tape: list[tuple[Any, ...]] = []
        for op in self.ops:
            kind = op["op"]
            if kind == "global_average_pool":
                tape.append((op, x.shape, None, None))
                x = x.mean(axis=(0, 1))
            elif kind == "flatten":
                tape.append((op, x.shape, None, None))
                x = x.reshape(-1)
            elif kind == "affine":
                tape.append((op, None, None, None))
                x = x * op["scale"] + op["offset"]
            else:
                pre = x @ op["kernel"] + op["bias"] if kind == "dense" else x
                post = _activate(op["activation"], pre)
                tape.append((op, x, pre, post))
                x = post
        return x, tape

    def score_gradient(self, features: np.ndarray, class_index: int) -> np.ndarray:
        """d score(class) / d features for one sample: an array shaped like `features`."""
        output, tape = self.forward(features)
        grad = np.zeros_like(output)
        if self.score == "logit":
            grad[class_index] = 1.0
        elif 1e-12 < output[class_index] <= 1.0:  # d log p = dp / p inside the clip range
            grad[class_index] = 1.0 / output[class_index]
        for op, saved, pre, post in reversed(tape):
            kind = op["op"]
            if kind == "global_average_pool":
                height, width, _ = saved
                grad = np.broadcast_to(grad / (height * width), saved)
            elif kind == "flatten":
                grad = grad.reshape(saved)
            elif kind == "affine":
                grad = grad * op["scale"]
            else:
                grad = _activation_grad(op["activation"], pre, post, grad)
                if kind == "dense":
                    grad = op["kernel"] @ grad
        return np.asarray(grad)


# ---- the compiled model ---------------------------------------------------------------------


class Program:
    """One compiled (`.tflite`) program on the LiteRT interpreter: the one wrapper every model
    kind runs on (classifiers here, generators in `generator_runtime`). A run sets the inputs
    (resizing them when their shapes changed since the last run), invokes, and copies the
    outputs asked for. Calls are serialised, so one program may be shared between threads."""

    def __init__(self, path: Path, what: str = "model", *, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        try:
            # The runtime announces its CPU delegate on fd 2; the user's terminal need not see it.
            with stderr_captured():
                self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads or os.cpu_count() or 1)
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f'"{self.path}" is not a usable compiled {what}: {err}') from err
        self.inputs: list[dict[str, Any]] = self._interpreter.get_input_details()
        self.outputs: list[dict[str, Any]] = self._interpreter.get_output_details()
        self._shapes: tuple = ()
        self._lock = threading.Lock()

    def input_named(self, word: str) -> dict[str, Any] | None:
        """The input whose name holds `word` (the serving function named its arguments)."""
        return next((detail for detail in self.inputs if word in detail["name"]), None)

    def run(self, feeds: list[tuple[dict[str, Any], np.ndarray]], outputs: list[int]) -> list[np.ndarray]:
        """Invoke with each (input, array) of `feeds`; copies of the tensors `outputs` (indices)."""
        with self._lock:
            arrays = [np.ascontiguousarray(array, np.float32) for _, array in feeds]
            shapes = tuple(array.shape for array in arrays)
            if shapes != self._shapes:
                with stderr_captured():  # the CPU delegate may announce itself on reallocation
                    for (detail, _), array in zip(feeds, arrays):
                        self._interpreter.resize_tensor_input(detail["index"], list(array.shape), strict=True)
                    self._interpreter.allocate_tensors()
                self._shapes = shapes
            for (detail, _), array in zip(feeds, arrays):
                self._interpreter.set_tensor(detail["index"], array)
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(index).copy() for index in outputs]


class CompiledModel:
    """A compiled classifier and its manifest, on a `Program`."""

    def __init__(self, path: Path, manifest: dict[str, Any] | None = None, *, threads: int | None = None) -> None:
        self.path = Path(path)
        found = manifest if manifest is not None else read_manifest(self.path)
        if found is None:
            raise ModelError(f'Compiled model "{self.path}" has no valid manifest "{manifest_path_for(self.path)}"')
        self.manifest: dict[str, Any] = found
        self.program = Program(self.path, "model", threads=threads)
        self._input = self.program.inputs[0]
        # Identified by rank: probabilities are (batch, classes), feature maps (batch, h, w, k).
        by_rank = {len(d["shape"]): d for d in self.program.outputs}
        if 2 not in by_rank:
            raise ModelError(f'Compiled model "{self.path}" has no (batch, classes) output')
        self._probs = by_rank[2]["index"]
        self._features = by_rank[4]["index"] if 4 in by_rank else None
        heat = self.manifest.get("heatmap") or {}
        self.head = Head(heat["head"], heat.get("score", "logit")) if heat.get("head") is not None else None
        self.heatmap_problem = "" if self.head else heat.get("problem", "the compiled model carries no heatmap head")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        shape = [int(v) for v in self._input["shape"][1:]]
        return shape[0], shape[1], shape[2]

    @property
    def num_classes(self) -> int:
        return int(self.manifest.get("num_classes") or self.program.outputs[0]["shape"][-1])

    @property
    def can_explain(self) -> bool:
        return self.head is not None and self._features is not None

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, feature maps) for a scaled float32 batch (n, h, w, 3)."""
        if self._features is None:
            [probs] = self.program.run([(self._input, batch)], [self._probs])
            return probs, None
        probs, features = self.program.run([(self._input, batch)], [self._probs, self._features])
        return probs, features

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)[0]

    def gradcam(self, scaled: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM (unnormalised, at the feature maps' resolution) for one scaled image (h, w, 3)."""
        if not self.can_explain:
            raise ValueError(self.heatmap_problem or "the compiled model has no heatmap output")
        _, features = self.run(scaled[None])
        assert features is not None and self.head is not None  # can_explain said so
        maps = features[0].astype(np.float64)
        weights = self.head.score_gradient(maps, int(class_index)).mean(axis=(0, 1))
        return np.maximum((maps * weights).sum(axis=-1), 0.0).astype(np.float32)
