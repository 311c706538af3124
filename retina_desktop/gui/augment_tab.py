"""The Augment tab: synthetic images from the GANs, training's augmentation previewed, and
fundus photographs drawn from vessel masks (pix2pix).

Its pages share one worker thread of their own ("retina-augment"), so generating a grid never
waits behind a model load or an analysis in the Analyse tab; each page submits its jobs there
with its own callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from tkinter import ttk

from retina_desktop.gui import dialogs
from retina_desktop.gui.augmentation_panel import AugmentationPanel
from retina_desktop.gui.host import TabHost
from retina_desktop.gui.synthetic_panel import SyntheticPanel
from retina_desktop.gui.vessel_panel import VesselPanel


class AugmentTab(ttk.Frame):
    def __init__(self, parent, app: TabHost) -> None:
        super().__init__(parent, padding=(4, 4))
        self.app = app
        self.worker = app.augment_worker
        # The folder of the last synthetic export in this session: the next export starts there
        # (else in synthesis.default_export_folder()), never in a folder of patient images.
        self.last_export: Path | None = None
        self.pages = ttk.Notebook(self)
        self.pages.pack(fill="both", expand=True)
        self.synthetic = SyntheticPanel(self.pages, self)
        self.augmentation = AugmentationPanel(self.pages, self)
        self.vessels = VesselPanel(self.pages, self)
        self.pages.add(self.synthetic, text="Synthetic images")
        self.pages.add(self.augmentation, text="Augmentation")
        self.pages.add(self.vessels, text="From vessel mask")
        self.panels = [self.synthetic, self.augmentation, self.vessels]

    def failure(self, restore: Callable[[str], None] | None = None) -> Callable[[str], None]:
        """An `on_error` for a page's job: `restore` puts the page right, then the user is told."""

        def failed(message: str) -> None:
            if restore is not None:
                restore(message)
            self.app.set_status("The Augment tab could not finish that; see the message.")
            dialogs.show_error(self.app.root, "Augment", message)

        return failed

    def model_changed(self) -> None:
        """The classifier changed: its modality sets the augmentation defaults."""
        self.augmentation.reset()
