"""The files that make up a model on disk, read and written without TensorFlow.

A model is `<name>.h5` (legacy HDF5, what Teachable Machine exports) or `<name>.keras`, plus
`labels.txt` beside it in Teachable Machine's format (`0 name` per line), plus an optional JSON
sidecar `<name>.json` (`ModelMetadata`). This module also reads a model's architecture config
so that layers that would run arbitrary code (Lambda) are refused before Keras sees the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .atomic import atomic_write
from .errors import ModelError, UnsafeModelError
from .records import ModelMetadata

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")
# Layers whose config carries Python code (marshalled bytecode or a function by name).
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


def labels_path_for(model_path: Path) -> Path:
    return model_path.parent / "labels.txt"


def sidecar_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def read_labels(path: Path) -> list[str]:
    """Class names from `0 name` lines (Teachable Machine) or plain `name` lines."""
    if not path.exists():
        raise ModelError(f'Labels file not found: "{path}" (expected one "0 name" line per class)')
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f'Cannot read labels file "{path}": {err}') from err
    names = []
    for number, line in enumerate(ln for ln in lines if ln):
        index, _, rest = line.partition(" ")
        if index.isdigit() and rest.strip():
            if int(index) != number:
                raise ModelError(
                    f'"{path}": line {number + 1} is numbered {index}, expected {number}'
                )
            names.append(rest.strip())
        else:
            names.append(line)
    if not names:
        raise ModelError(f'Labels file "{path}" is empty')
    if len(set(names)) != len(names):
        raise ModelError(f'Labels file "{path}" names a class twice')
    return names


def write_labels(path: Path, classes: list[str]) -> None:
    with atomic_write(path, encoding="utf-8") as handle:
        handle.writelines(f"{i} {name}\n" for i, name in enumerate(classes))


def read_sidecar(path: Path) -> ModelMetadata | None:
    if not path.exists():
        return None
    try:
        return ModelMetadata.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f'Model sidecar "{path}" is not valid: {err}') from err


def write_sidecar(path: Path, metadata: ModelMetadata) -> None:
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(metadata.to_json())


def read_model_config(path: Path) -> dict[str, Any]:
    """The architecture config stored in an .h5 or .keras file (no TensorFlow needed)."""
    if not path.exists():
        raise ModelError(f'Model file not found: "{path}"')
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f'"{path}" is not a Keras model file (expected .h5 or .keras)')
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
            raise ModelError(f'"{path}" is not a valid .keras model file ({err})') from err
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except OSError as err:
        raise ModelError(f'"{path}" is not a valid HDF5 model file ({err})') from err
    if raw is None:
        raise ModelError(
            f'"{path}" holds weights only, not a model (no architecture was saved with it)'
        )
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except ValueError as err:
        raise ModelError(f'"{path}" has an unreadable model config ({err})') from err


def find_code_layers(config: Any) -> list[str]:
    """Names of layers anywhere in `config` that would run stored Python code when loaded."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("class_name") in CODE_LAYERS:
                inner = node.get("config", {})
                found.append(f'{inner.get("name", "?")} ({node["class_name"]})')
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def check_safe(path: Path, config: dict[str, Any]) -> None:
    """Refuse files with code-carrying layers; the caller decides whether the user trusts it."""
    code_layers = find_code_layers(config)
    if code_layers:
        raise UnsafeModelError(
            f'"{path}" contains layers that run arbitrary Python code when loaded: '
            f"{', '.join(code_layers)}. Open it only if you trust where it came from "
            "(--trust-model on the command line)."
        )
