"""Opening a model the app runs, as its sidecar's kind says: `open_classifier` gives a
`ModelBundle` (a model file without a sidecar, such as a Teachable Machine export, is a
classifier) and refuses a generator before loading it; `open_generator` gives a compiled
`Generator`. The kind itself is read by `sidecars`, and only there.
"""

from __future__ import annotations

from pathlib import Path

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.inference import sidecars
from retina_desktop.inference.bundle import ModelBundle, load_bundle
from retina_desktop.inference.generator_runtime import Generator, read_generator_info
from retina_desktop.inference.litert_backend import find_compiled

# What each generator kind is called in a sentence.
GENERATOR_NAMES = {
    sidecars.CONDITIONAL: "class-conditional GAN",
    sidecars.VESSEL_TO_FUNDUS: "vessel-to-fundus generator",
}


def open_classifier(model_path: str | Path, labels_path: str | Path | None = None, *, trust_model: bool = False,
                    backend: str = "auto") -> ModelBundle:
    """A classifier for the Analyse and Batch tabs (see `bundle.load_bundle` for the options); a
    generator is refused before anything is loaded."""
    kind = sidecars.read_kind(model_path)
    if kind in GENERATOR_NAMES:
        raise ModelError(f'"{model_path}" is a {GENERATOR_NAMES[kind]}, not a classifier: open it in the Augment tab')
    return load_bundle(model_path, labels_path, trust_model=trust_model, backend=backend)


def open_generator(path: str | Path) -> Generator:
    """Open a generator for sampling: its compiled copy, compiled on first open if need be.

    Compiling needs TensorFlow (a developer install); the packaged app ships its generators
    compiled. Raises `UserError`/`ModelError` with what to do otherwise.
    """
    info = read_generator_info(path)
    problems: list[str] = []  # a compiled copy whose bytes changed is refused, and compiled anew
    compiled = find_compiled(info.path, problems=problems)
    if compiled is None and not info.path.exists():  # the packaged app: nothing to compile from
        why = problems[0] if problems else "it has no usable compiled copy"
        raise UserError(f'Generator "{info.path}" cannot be opened: {why}')
    if compiled is None:
        try:
            from retina_desktop.inference.generator_export import compile_generator_to_cache

            compiled = compile_generator_to_cache(info)
        except ImportError as err:  # the packaged app has no TensorFlow to compile with
            why = f" ({problems[0]})" if problems else ""
            raise UserError(f'"{info.path}" has no compiled copy (.tflite) up to date with it{why}, and this '
                            f"installation cannot compile one ({err}); run `python -m training export --model "
                            f"{info.path}` where TensorFlow is installed") from err
    return Generator(info, compiled)
