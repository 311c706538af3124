"""What a tab may use of the window that holds it, as a `typing.Protocol`.

`MainWindow` implements it; the tabs and their pages call these members and nothing else of
the window or of each other, so a tab can be built (and tested) beside any host. Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from typing import Protocol

from PIL import Image

from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.gui.service_api import ClassifierService
from retina_desktop.gui.worker import Worker


class TabHost(Protocol):
    root: tk.Tk
    worker: Worker  # analyses, heatmaps, reports, model loads
    batch_worker: Worker  # folder runs, so the Analyse tab stays usable meanwhile
    augment_worker: Worker  # generators and augmentation previews
    classifier: ClassifierService
    metadata: ModelMetadata | None
    model_ready: bool

    def set_status(self, text: str) -> None:
        """Show `text` in the status bar."""

    def set_status_if(self, current: str, text: str) -> None:
        """Replace the status message with `text` only while it still reads `current`."""

    def open_in_analyse(self, path: Path) -> None:
        """Show the Analyse tab and analyse `path` there."""

    def open_model(self, path: str | Path | None = None) -> None:
        """Switch to the model at `path` (asked for when None)."""

    def analysed_picture(self) -> tuple[Image.Image, str] | None:
        """The picture open in the Analyse tab and its file name; None when there is none."""
