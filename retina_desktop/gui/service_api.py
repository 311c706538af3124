"""What the GUI needs from the service layer's classifier, as a `typing.Protocol`.

`service.Classifier` is the implementation; the GUI tests' fakes implement the same protocol,
so the GUI code calls these members without fallbacks. The jobs call them on worker threads
(every member may be called from any thread); the window reads `model_path` and `settings` and
sets `settings` on the Tk thread. Nothing here imports TensorFlow or the service itself.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.core.prediction import Prediction
from retina_desktop.core.settings import Settings


class LoadedModel(Protocol):
    """The part of a loaded model bundle the GUI reads."""

    @property
    def metadata(self) -> ModelMetadata: ...

    # Why a compiled copy found for the model file was refused, in a line ("" when none was).
    compiled_problem: str


@runtime_checkable
class ClassifierService(Protocol):
    """One model, loaded on first use; what the window and its jobs call."""

    model_path: Path
    settings: Settings  # read by the next analysis; the Settings dialog replaces it

    def bundle(self) -> LoadedModel:
        """Load the model (once) and return it; raises `ModelError` when it cannot be used."""
        ...

    def predict_file(self, image_path: str | Path) -> Prediction:
        """Read, check, fit and classify one file, keeping the decoded picture in the
        prediction (`Prediction.picture`); raises `ImageError` for a bad file."""
        ...

    def predict_files(self, paths: Iterable[str | Path]) -> Generator[tuple[Path, Prediction | UserError], None, None]:
        """Classify many files in order: (path, Prediction or the file's UserError)."""
        ...

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for fitted uint8 images (n, h, w, 3)."""
        ...

    def heatmap(self, prediction: Prediction, class_name: str | None = None) -> np.ndarray:
        """Grad-CAM over the image the model saw for `prediction`, for `class_name` (default:
        the predicted class); raises `ValueError` when the model cannot be explained."""
        ...
