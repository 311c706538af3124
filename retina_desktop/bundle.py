"""Loading a model bundle (model file + labels + sidecar) into something ready to predict.

Checks run before Keras sees the file (it exists, it is a model, it carries no code unless the
user trusts it) and after (its output size matches its labels, its input is an RGB image).
A model without a sidecar, such as a Teachable Machine export, gets that tool's conventions:
centre-crop to the model's input size and x/127.5 - 1 scaling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError
from .model_files import (
    check_safe,
    labels_path_for,
    read_labels,
    read_model_config,
    read_sidecar,
    sidecar_path_for,
)
from .quiet import import_keras
from .records import InputSpec, ModelMetadata


@dataclass
class ModelBundle:
    path: Path
    model: Any  # keras.Model
    metadata: ModelMetadata

    @property
    def classes(self) -> list[str]:
        return self.metadata.classes


def load_bundle(
    model_path: str | Path, labels_path: str | Path | None = None, *, trust_model: bool = False
) -> ModelBundle:
    """Load and validate a model with its labels and sidecar; raises `ModelError` on problems."""
    path = Path(model_path)
    config = read_model_config(path)
    if not trust_model:
        check_safe(path, config)
    sidecar = read_sidecar(sidecar_path_for(path))
    labels_file = Path(labels_path) if labels_path else labels_path_for(path)
    if labels_file.exists() or sidecar is None:
        classes = read_labels(labels_file)
    else:
        classes = sidecar.classes
    if sidecar is not None and sidecar.classes and sidecar.classes != classes:
        raise ModelError(
            f'"{labels_file}" lists {classes} but the sidecar "{sidecar_path_for(path)}" '
            f"says the model was trained on {sidecar.classes}"
        )
    model = _load_keras(path, trust_model)
    outputs = _output_units(model)
    if outputs != len(classes):
        raise ModelError(
            f'"{path}" outputs {outputs} class probabilities but "{labels_file}" lists '
            f"{len(classes)} labels ({', '.join(classes)})"
        )
    height, width, channels = _input_shape(path, model)
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
    return ModelBundle(path=path, model=model, metadata=metadata)


def _load_keras(path: Path, trust_model: bool):
    keras = import_keras()
    try:
        if path.suffix.lower() == ".keras":
            return keras.saving.load_model(path, compile=False, safe_mode=not trust_model)
        from .legacy_h5 import load_h5_model

        return load_h5_model(path, safe_mode=not trust_model)
    except ModelError:
        raise
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise ModelError(f'"{path}" could not be loaded as a Keras model: {err}') from err


def _output_units(model) -> int:
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else model.output_shape
    if len(shape) != 2:
        raise ModelError(f"The model's output has shape {tuple(shape)}; expected (batch, classes)")
    return int(shape[-1])


def _input_shape(path: Path, model) -> tuple[int, int, int]:
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ModelError(
            f'"{path}" takes input of shape {shape}; expected (batch, height, width, 3) images'
        )
    return int(shape[1]), int(shape[2]), int(shape[3])
