"""A trained generator on disk: the Keras file and its sidecar, loaded together.

Its own module, below the trainer: `synthesize`, `gan-eval`, the experiment pipeline and the
trainer's warm start all load generators, and none of them may import another of them in a circle.
"""

from __future__ import annotations

import json
from pathlib import Path

from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras


def load_generator(path: str | Path):
    """(Keras generator, its sidecar dict); the sidecar `<name>.json` is required for its classes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'Generator not found: "{path}"')
    sidecar_file = path.with_suffix(".json")
    if not sidecar_file.is_file():
        raise UserError(f'"{path}" has no sidecar "{sidecar_file}" naming its classes; '
                        "was it made by `python -m training gan`?")
    sidecar = json.loads(sidecar_file.read_text())
    keras = import_keras()
    try:
        generator = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise UserError(f'"{path}" could not be loaded as a Keras generator: {err}') from err
    return generator, sidecar
