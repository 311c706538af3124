"""Loading a model bundle (model file + labels + sidecar) into something ready to predict.

Checks run before Keras sees the file (it exists, it is a model, it carries no code unless the
user trusts it) and after (its output size matches its labels, its input is an RGB image).
A model without a sidecar, such as a Teachable Machine export, gets that tool's conventions:
centre-crop to the model's input size and x/127.5 - 1 scaling.

What runs the model is chosen here too, once, as the bundle's `runtime` (see `runtime`): a
compiled LiteRT copy up to date with the file (found by content hash, see `litert_backend`)
needs no TensorFlow; otherwise Keras loads the file. Nothing after this asks which it got.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

from retina_desktop.core.errors import ModelError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.core.quiet import import_keras
from retina_desktop.inference.familiarity import Familiarity, load_for_model, path_for
from retina_desktop.inference.litert_backend import (
    CompiledModel,
    cached_path_for,
    find_compiled,
    litert_available,
    model_available,
    source_sha256,
)
from retina_desktop.inference.model_files import (
    check_safe,
    labels_path_for,
    read_labels,
    read_model_config,
    read_sidecar,
    shown_names,
    sidecar_path_for,
)
from retina_desktop.inference.model_runtime import KerasRuntime, LiteRTRuntime, ModelRuntime

log = logging.getLogger(__name__)


BACKENDS = ("keras", "auto", "litert")


class ModelBundle:
    """A validated model: its file, its metadata, and what runs it.

    `runtime` runs the model (`runtime.ModelRuntime`): the compiled LiteRT model when one up to
    date with the file was found (or made, `compiled`), else the Keras model. `model` is the
    Keras model, loaded on first access when only the compiled one was needed, so a bundle
    served by LiteRT never imports TensorFlow unless someone asks for Keras.
    `familiarity` is the unfamiliar-image record fitted for this model file (None when it has
    none, or when its file could not be used: `familiarity_problem` then says why, in a line).
    `compiled_problem` says, in a line, why a compiled copy found for the file was refused (its
    bytes changed after compiling); "" when none was.
    """

    def __init__(
        self,
        path: Path,
        model: Any = None,
        metadata: ModelMetadata | None = None,
        compiled: CompiledModel | None = None,
        *,
        trust_model: bool = False,
        familiarity: Familiarity | None = None,
        familiarity_problem: str = "",
        compiled_problem: str = "",
    ) -> None:
        if metadata is None:
            raise TypeError("ModelBundle needs its metadata")
        self.path = Path(path)
        self.metadata = metadata
        self.compiled = compiled
        self.trust_model = trust_model
        self.familiarity = familiarity
        self.familiarity_problem = familiarity_problem
        self.compiled_problem = compiled_problem
        self._model = model
        self._model_lock = threading.RLock()
        self._keras_runtime: KerasRuntime | None = None
        # The choice, made once: the compiled model when there is one (it falls back to Keras
        # only for a heatmap its copy cannot make), else Keras.
        self._runtime: ModelRuntime | None = (
            LiteRTRuntime(compiled, keras_fallback=self.keras_runtime) if compiled is not None else None
        )

    @property
    def model(self) -> Any:
        """The Keras model (imports TensorFlow and loads the file on first use if needed)."""
        with self._model_lock:
            if self._model is None:
                self._model = _load_keras(self.path, self.trust_model)
            return self._model

    @property
    def runtime(self) -> ModelRuntime:
        """What runs the model (see the class docstring)."""
        return self._runtime if self._runtime is not None else self.keras_runtime()

    def keras_runtime(self) -> KerasRuntime:
        """The Keras model as a runtime (loads it on first use if needed)."""
        with self._model_lock:
            if self._keras_runtime is None:
                self._keras_runtime = KerasRuntime(self.model, self.path)
            return self._keras_runtime

    @property
    def keras_loaded(self) -> bool:
        return self._model is not None

    @property
    def backend(self) -> str:
        """"litert" when predictions run on the compiled model, else "keras"."""
        return self.runtime.name

    @property
    def classes(self) -> list[str]:
        return self.metadata.classes


def load_bundle(
    model_path: str | Path,
    labels_path: str | Path | None = None,
    *,
    trust_model: bool = False,
    backend: str = "keras",
) -> ModelBundle:
    """Load and validate a model with its labels and sidecar; raises `ModelError` on problems.

    `backend`: "keras" loads the Keras model; "litert" requires a compiled model up to date
    with the file (beside it or in the user's cache; see `litert_backend`); "auto" uses such a
    compiled model without importing TensorFlow, else loads Keras and, where LiteRT is
    installed, compiles the model into the user's cache and runs that (once per model file).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
    path = Path(model_path)
    # The packaged app ships compiled copies without the model files they came from: such a
    # copy carries no Python code to check, and it runs on LiteRT or not at all.
    compiled_only = not path.exists() and backend != "keras" and model_available(path)
    if not compiled_only:
        config = read_model_config(path)
        if not trust_model:
            check_safe(path, config)
    sidecar = read_sidecar(sidecar_path_for(path))
    labels_file = Path(labels_path) if labels_path else labels_path_for(path)
    # A labels file the user named must exist; only the default one may be absent.
    if labels_path or labels_file.exists() or sidecar is None:
        classes = read_labels(labels_file)
    else:
        classes = sidecar.classes
    if sidecar is not None and sidecar.classes and sidecar.classes != classes:
        raise ModelError(
            f'"{labels_file}" lists {shown_names(classes)} but the sidecar "{sidecar_path_for(path)}" '
            f"says the model was trained on {shown_names(sidecar.classes)}"
        )
    compiled = model = None
    sha256 = None
    refused: list[str] = []  # compiled copies whose bytes changed after compiling (logged)
    if backend != "keras" and litert_available():
        sha256 = source_sha256(path)
        found = find_compiled(path, sha256, problems=refused)
        if found is not None:
            compiled = CompiledModel(found)
    if compiled_only and compiled is None:
        why = refused[0] if refused else ("" if litert_available() else "the LiteRT runtime is not installed")
        raise ModelError(f'Model file not found: "{path}", and its compiled copy cannot be used'
                         + (f" ({why})" if why else ""))
    if backend == "litert" and compiled is None:
        raise ModelError(
            f'"{path}" has no compiled (LiteRT) copy up to date with it'
            + ("" if litert_available() else " (the LiteRT runtime, ai-edge-litert, is not installed)")
            + (f" ({refused[0]})" if refused else "")
            + f": run python -m training export --model {path}"
        )
    if compiled is not None:
        opened: ModelRuntime = LiteRTRuntime(compiled)
    else:
        model = _load_keras(path, trust_model)
        opened = KerasRuntime(model, path)
    outputs = opened.num_classes
    height, width, _ = opened.input_shape
    if outputs != len(classes):
        raise ModelError(
            f'"{path}" outputs {outputs} class probabilities but "{labels_file}" lists '
            f"{len(classes)} labels ({shown_names(classes)})"
        )
    if sidecar is None:
        metadata = ModelMetadata(
            classes=classes,
            input=InputSpec(height, width, fit="crop", scaling="tm"),
            name=path.stem if path.stem != "keras_model" else path.parent.name or path.stem,
            provenance={"note": "no sidecar: Teachable Machine defaults (centre crop, x/127.5-1)"},
        )
    else:
        metadata = sidecar
        metadata.classes = classes
        if (metadata.input.height, metadata.input.width) != (height, width):
            raise ModelError(
                f'The sidecar of "{path}" says input {metadata.input.height}x{metadata.input.width} '
                f"but the model takes {height}x{width}"
            )
    if backend == "auto" and compiled is None and litert_available():
        compiled = _compile_into_cache(model, path, metadata.input.scaling, sha256 or source_sha256(path))
    if refused:
        # Kept in the log file for the GUI; at info level, since the CLI prints it as its own
        # warning line and a second copy from whatever handler TensorFlow installed is noise.
        log.info("%s", refused[0])
    familiarity, problem = None, ""
    if path_for(path).exists():
        # A record fitted for another version of the file would measure nonsense: refused.
        familiarity, problem = load_for_model(path, sha256 or source_sha256(path), metadata.familiarity)
        if problem:
            log.warning("%s", problem)
    return ModelBundle(
        path, model, metadata, compiled, trust_model=trust_model, familiarity=familiarity, familiarity_problem=problem,
        compiled_problem=refused[0] if refused else "",
    )


def _compile_into_cache(model, path: Path, scaling: str, sha256: str) -> CompiledModel | None:
    """Compile a newly opened model into the user's cache; None (Keras serves) if that fails."""
    failed = cached_path_for(sha256).with_suffix(".failed")
    if failed.exists():  # tried before: do not spend the seconds again on every open
        return None
    try:
        from retina_desktop.inference.litert_export import compile_to_cache

        return CompiledModel(compile_to_cache(model, path, scaling=scaling, sha256=sha256))
    except Exception as err:  # any failure leaves the Keras path, which works
        log.warning("could not compile %s for LiteRT; using Keras", path, exc_info=True)
        with contextlib.suppress(OSError):
            failed.parent.mkdir(parents=True, exist_ok=True)
            failed.write_text(f"{type(err).__name__}: {err}\n", encoding="utf-8")
        return None


def _load_keras(path: Path, trust_model: bool):
    try:
        keras = import_keras()
    except ImportError as err:  # the packaged app ships without TensorFlow
        raise ModelError(
            f'"{path}" has no compiled copy up to date with it, and this installation has no '
            "TensorFlow to open Keras files: compile it on a machine with TensorFlow "
            f"(python -m training export --model {path.name}) and put the .tflite and "
            ".tflite.json files beside it"
        ) from err
    try:
        if path.suffix.lower() == ".keras":
            return keras.saving.load_model(path, compile=False, safe_mode=not trust_model)
        from retina_desktop.inference.legacy_h5 import load_h5_model

        return load_h5_model(path, safe_mode=not trust_model)
    except ModelError:
        raise
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise ModelError(f'"{path}" could not be loaded as a Keras model: {err}') from err
