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

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.card_schema import ClassifierSidecar
from retina_desktop.core.errors import ModelError, UnsafeModelError
from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.inference import sidecars

MODEL_SUFFIXES = (".h5", ".hdf5", ".keras")
# Layers whose config carries Python code (marshalled bytecode or a function by name).
CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}
# A labels file names classes, one a line: 1 MB and 1,000 classes are far above any real model,
# and checked before parsing, so a huge file costs nothing to refuse.
MAX_LABELS_BYTES = 1 << 20
MAX_CLASSES = 1000


def labels_path_for(model_path: Path) -> Path:
    return model_path.parent / "labels.txt"


def sidecar_path_for(model_path: Path) -> Path:
    return sidecars.sidecar_path_for(model_path)


def read_labels(path: Path) -> list[str]:
    """Class names from `0 name` lines (Teachable Machine) or plain `name` lines.

    The size and the line count are checked before the names are parsed, and messages name
    counts, never the content: a labels file of a million lines is one short error.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_LABELS_BYTES + 1)
    except FileNotFoundError as err:
        raise ModelError(f'Labels file not found: "{path}" (expected one "0 name" line per class)') from err
    except OSError as err:
        raise ModelError(f'Cannot read labels file "{path}": {err.strerror or err}') from err
    if len(raw) > MAX_LABELS_BYTES:
        try:
            size = f"{path.stat().st_size / 2**20:.1f} MB"
        except OSError:
            size = f"over {MAX_LABELS_BYTES // 2**20} MB"
        raise ModelError(
            f'Labels file "{path}" is too large ({size}; expected one "0 name" line per class, '
            f"at most {MAX_LABELS_BYTES // 2**20} MB)"
        )
    try:
        lines = [ln.strip() for ln in raw.decode("utf-8-sig").splitlines()]
    except UnicodeDecodeError as err:
        raise ModelError(
            f'Cannot read labels file "{path}": it is not UTF-8 text ({err.reason} at byte {err.start})'
        ) from err
    lines = [ln for ln in lines if ln]
    if len(lines) > MAX_CLASSES:
        raise ModelError(f'Labels file "{path}" lists {len(lines)} classes; at most {MAX_CLASSES} are supported')
    names = []
    for number, line in enumerate(lines):
        index, _, rest = line.partition(" ")
        if index.isdigit() and rest.strip():
            if int(index) != number:
                raise ModelError(
                    f'"{path}": line {number + 1} is numbered {index[:20]}, expected {number}'
                )
            names.append(rest.strip())
        else:
            names.append(line)
    if not names:
        raise ModelError(f'Labels file "{path}" is empty')
    if len(set(names)) != len(names):
        raise ModelError(f'Labels file "{path}" names a class twice')
    return names


def shown_names(names: list[str], limit: int = 8) -> str:
    """Class names for a message: the first few and how many more."""
    shown = ", ".join(name[:40] for name in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def write_labels(path: Path, classes: list[str]) -> None:
    with atomic_write(path, encoding="utf-8") as handle:
        handle.writelines(f"{i} {name}\n" for i, name in enumerate(classes))


def read_sidecar(path: Path) -> ModelMetadata | None:
    """A classifier's sidecar, every value checked against its schema; None when there is no
    sidecar. A sidecar of another kind (a generator's) is refused."""
    if not path.exists():
        return None
    try:
        data = sidecars.read_json(path)
        sidecars.schema_for(data, ClassifierSidecar)  # a generator's sidecar is refused here
        return ModelMetadata.from_dict(data)  # which checks it against that schema
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f'Model sidecar "{path}" is not valid: {err}') from err


def write_sidecar(path: Path, metadata: ModelMetadata) -> None:
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(metadata.to_json())


def update_sidecar(path: Path, key: str, value: Any) -> None:
    """Set one top-level key of a sidecar, read from disk now and written back atomically.

    The file is edited as JSON, not through `ModelMetadata`, so keys this version does not know
    (another tool's) survive; the result must still be a valid sidecar, or nothing is written.
    Several tools update their own keys of one sidecar: each reads the file at the moment it
    writes, never an older copy."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelError(f'Model sidecar not found: "{path}"') from err
    except (OSError, ValueError) as err:
        raise ModelError(f'Model sidecar "{path}" is not valid: {err}') from err
    if not isinstance(data, dict):
        raise ModelError(f'Model sidecar "{path}" is not valid: expected a JSON object')
    data[key] = value
    try:
        sidecars.schema_for(data, ClassifierSidecar)
        ModelMetadata.from_dict(data)
    except (ValueError, TypeError) as err:
        raise ModelError(f'Updating "{key}" would make the sidecar "{path}" invalid: {err}') from err
    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")


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
