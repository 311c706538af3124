"""The Augment tab's "Augmentation" page: what training's augmentation does to an image.

The controls are the strengths of `retina_desktop.imaging.augmentation.AugmentConfig`, starting at the
values training uses for the open model's modality; the grid shows the image as the model sees
it (fitted to its input) and random draws at those strengths, each captioned with its values.
The same seed gives the same draws, so moving one control shows what that control changes.
"""

from __future__ import annotations

import functools
import random
import tkinter as tk
from dataclasses import dataclass, fields
from pathlib import Path
from tkinter import ttk
from typing import Any

from PIL import Image

from retina_desktop.core.model_card import InputSpec
from retina_desktop.gui import dialogs
from retina_desktop.gui.image_grid import ImageGrid, LargeView
from retina_desktop.gui.worker import Requests
from retina_desktop.services.pictures import AugmentConfig, default_config, fit_image, load_image, random_previews

PREVIEWS = 15  # plus the original: a 4 x 4 grid
DEBOUNCE_MS = 150
# (field, label, lowest, highest, format) for each strength slider.
SLIDERS = (
    ("rotation_degrees", "Rotation ± degrees", 0.0, 45.0, "{:.0f}°"),
    ("zoom", "Zoom ± fraction", 0.0, 0.5, "{:.2f}"),
    ("brightness", "Brightness ± fraction", 0.0, 0.5, "{:.2f}"),
    ("contrast", "Contrast ± fraction", 0.0, 0.5, "{:.2f}"),
    ("gamma", "Gamma ± (log-uniform)", 0.0, 1.0, "{:.2f}"),
)


@dataclass(frozen=True)
class Previews:
    """Payload of "augment.previews"."""

    original: Image.Image
    images: list[Image.Image]
    captions: list[str]


def previews_job(picture: Image.Image, spec: InputSpec, config: AugmentConfig, seed: int) -> Previews:
    """The fitted image and PREVIEWS random augmentations of it (augment worker)."""
    import numpy as np

    fitted = fit_image(picture, spec)
    drawn = random_previews(fitted, config, PREVIEWS, seed=seed)
    return Previews(Image.fromarray(fitted), [Image.fromarray(np.asarray(a)) for a, _ in drawn],
                    [t.describe() for _, t in drawn])


@dataclass(frozen=True)
class OpenedPicture:
    """A picture opened for the previews, and the file it came from."""

    path: Path
    picture: Image.Image


def load_picture_job(path: Path) -> OpenedPicture:
    picture = load_image(path).rgb
    picture.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    return OpenedPicture(path, picture)


class AugmentationPanel(ttk.Frame):
    def __init__(self, parent, tab) -> None:
        super().__init__(parent, padding=(8, 8))
        self.tab = tab
        self.picture: Image.Image | None = None
        self.source = ""
        self.seed = 0
        self.requests = Requests()  # one per redraw
        self._pending: str | None = None
        self.variables: dict[str, tk.Variable] = {}
        self._build()
        self.reset()

    @property
    def modality(self) -> str:
        metadata = self.tab.app.metadata
        return metadata.modality if metadata is not None else "fundus"

    @property
    def spec(self) -> InputSpec:
        metadata = self.tab.app.metadata
        return metadata.input if metadata is not None else InputSpec(224, 224, "crop", "none")

    def _build(self) -> None:
        controls = ttk.Frame(self)
        controls.pack(side="left", fill="y", padx=(0, 10))
        ttk.Label(controls, text="Image").pack(anchor="w")
        row = ttk.Frame(controls)
        row.pack(fill="x")
        ttk.Button(row, text="Use the Analyse image", command=self.use_analyse_image).pack(side="left")
        ttk.Button(row, text="Open…", width=7, command=self.browse).pack(side="left", padx=(4, 0))
        self.source_label = ttk.Label(controls, text="No image yet", style="Status.TLabel", wraplength=300)
        self.source_label.pack(anchor="w", pady=(2, 8))

        flips = ttk.Frame(controls)
        flips.pack(fill="x")
        for name, text in (("flip_horizontal", "Flip left-right"), ("flip_vertical", "Flip upside down")):
            flag = tk.BooleanVar()
            self.variables[name] = flag
            ttk.Checkbutton(flips, text=text, variable=flag, command=self.changed).pack(side="left", padx=(0, 8))
        self.scales: dict[str, ttk.Scale] = {}
        self.value_labels: dict[str, ttk.Label] = {}
        for name, text, low, high, fmt in SLIDERS:
            ttk.Label(controls, text=text).pack(anchor="w", pady=(8, 0))
            line = ttk.Frame(controls)
            line.pack(fill="x")
            value = tk.DoubleVar()
            self.variables[name] = value
            scale = ttk.Scale(line, from_=low, to=high, variable=value, length=220,
                              command=functools.partial(self._moved, name, fmt))
            scale.pack(side="left")
            self.scales[name] = scale
            self.value_labels[name] = ttk.Label(line, width=6)
            self.value_labels[name].pack(side="left", padx=(6, 0))
        buttons = ttk.Frame(controls)
        buttons.pack(fill="x", pady=(12, 0))
        self.random_button = ttk.Button(buttons, text="Random", style="Accent.TButton", command=self.reroll)
        self.random_button.pack(side="left")
        ttk.Button(buttons, text="Training defaults", command=self.reset).pack(side="left", padx=(6, 0))
        self.defaults_note = ttk.Label(controls, text="", wraplength=300, justify="left", style="Status.TLabel")
        self.defaults_note.pack(anchor="w", pady=(10, 0))

        right = ttk.Frame(self)
        right.pack(side="left", fill="both", expand=True)
        ttk.Label(right, text="First: the image as the model sees it. Then random augmentations, "
                              "as training draws them.").pack(anchor="w")
        self.grid_view = ImageGrid(right, "Open an image in the Analyse tab (or with Open… here) to see "
                                          "what training's augmentation does to it.", on_open=self.open_large)
        self.grid_view.pack(fill="both", expand=True)

    # the controls
    def augment_config(self) -> AugmentConfig:
        values = {f.name: self.variables[f.name].get() for f in fields(AugmentConfig)}
        chosen: dict[str, Any] = {
            k: (bool(v) if k.startswith("flip") else round(float(v), 3)) for k, v in values.items()
        }
        return AugmentConfig(**chosen)

    def set_config(self, config: AugmentConfig) -> None:
        for f in fields(AugmentConfig):
            self.variables[f.name].set(getattr(config, f.name))
        for name, _, _, _, fmt in SLIDERS:
            self.value_labels[name].configure(text=fmt.format(getattr(config, name)))
        self.changed()

    def reset(self) -> None:
        defaults = default_config(self.modality)
        self.defaults_note.configure(text=(
            f"Training defaults for {self.modality}: flips {'↔' if defaults.flip_horizontal else ''}"
            f"{' ↕' if defaults.flip_vertical else ''}"
            f"{'' if defaults.flip_horizontal or defaults.flip_vertical else 'none'}, "
            f"rotation ±{defaults.rotation_degrees:.0f}°, zoom ±{defaults.zoom:.0%}, "
            f"brightness ±{defaults.brightness:.2f}, "
            f"contrast ±{defaults.contrast:.2f}, gamma ±{defaults.gamma:.2f}."
            + (" OCT B-scans are never flipped upside down: the retina's layers have a top and a bottom."
               if self.modality == "oct" else "")))
        self.set_config(defaults)

    def _moved(self, name: str, fmt: str, _value: str = "") -> None:
        self.value_labels[name].configure(text=fmt.format(self.variables[name].get()))
        self.changed()

    def changed(self) -> None:
        """A control moved: redraw soon (sliders fire many events per drag)."""
        if self._pending is not None:
            self.after_cancel(self._pending)
        self._pending = self.after(DEBOUNCE_MS, self.render)

    def reroll(self) -> None:
        self.seed = random.randrange(1_000_000)
        self.render()

    # the image
    def use_analyse_image(self) -> None:
        analysed = self.tab.app.analysed_picture()
        if analysed is None:
            self.source_label.configure(text="No image is open in the Analyse tab; use Open… here instead.")
            return
        self.set_picture(*analysed)

    def browse(self) -> None:
        path = dialogs.ask_image(self)
        if path is not None:
            self.tab.worker.submit("picture", load_picture_job, path, on_done=self._picture_loaded,
                                   on_error=self.tab.failure())

    def _picture_loaded(self, opened: OpenedPicture) -> None:
        self.set_picture(opened.picture, opened.path.name)

    def set_picture(self, picture: Image.Image, source: str) -> None:
        self.picture, self.source = picture, source
        self.source_label.configure(text=source)
        self.render()

    def render(self) -> None:
        self._pending = None
        if self.picture is None:
            return
        self.tab.worker.submit("previews", previews_job, self.picture, self.spec, self.augment_config(), self.seed,
                               request=self.requests.new(), on_done=self.show, on_error=self.tab.failure())

    def show(self, previews: Previews) -> None:
        self.grid_view.show([previews.original] + previews.images, ["model input (unchanged)"] + previews.captions)

    def open_large(self, index: int) -> None:
        LargeView(self, self.grid_view.images[index], self.grid_view.captions[index])
