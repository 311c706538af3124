"""The Augment tab's "From vessel mask" page: a vessel mask in, a synthetic fundus photo out.

The mask comes from a file (white vessels on black, like DRIVE's), from `random_vessel_tree`
(a made-up sample), or is drawn or touched up with the mouse on the left panel. The
vessel-to-fundus generator (pix2pix) runs on the augment worker; the colour style is one of the
data sets it learned, so the same vessels can be drawn in another camera's colours.
"""

from __future__ import annotations

import random
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk

import numpy as np
from PIL import Image, ImageDraw

from retina_desktop.gui import dialogs
from retina_desktop.gui.image_panel import ImagePanel
from retina_desktop.gui.worker import Requests
from retina_desktop.services.synthetic_samples import (
    VESSEL_TO_FUNDUS,
    Generator,
    SyntheticImage,
    open_generator,
    shipped_generators,
)
from retina_desktop.services.vessel_synthesis import default_fov, generator_input, load_mask, random_vessel_tree

EDIT_SIZE = 512  # the mask is edited at this resolution, then resized for the generator


@dataclass(frozen=True)
class Made:
    """A synthetic photograph made from the mask, in one style."""

    pixels: np.ndarray
    style: str
    seconds: float


def translate_job(generator, vessels: np.ndarray, fov: np.ndarray, style: str) -> Made:
    import time

    started = time.perf_counter()
    planes = generator_input(vessels, fov, style, generator.info.styles, generator.info.size)
    pixels = generator.translate(planes)[0]
    return Made(pixels, style, time.perf_counter() - started)


@dataclass(frozen=True)
class OpenedMask:
    """A vessel mask opened for editing (EDIT_SIZE square), and the file it came from."""

    path: Path
    vessels: np.ndarray


def load_mask_job(path: Path) -> OpenedMask:
    mask = load_mask(path)
    return OpenedMask(path, np.asarray(Image.fromarray(mask).resize((EDIT_SIZE, EDIT_SIZE), Image.Resampling.NEAREST)))


class VesselPanel(ttk.Frame):
    def __init__(self, parent, tab) -> None:
        super().__init__(parent, padding=(8, 8))
        self.tab = tab
        self.generators = [g for g in shipped_generators() if g.kind == VESSEL_TO_FUNDUS]
        self.generator: Generator | None = None
        self.vessels = np.zeros((EDIT_SIZE, EDIT_SIZE), bool)
        self.fov = default_fov(EDIT_SIZE)
        self.mask_source = ""
        self.result: np.ndarray | None = None
        self.requests = Requests()  # one per Generate
        self.shown_token = 0
        self._last_point: tuple[int, int] | None = None
        self._build()
        if self.generators:
            self.after(1, lambda: self._open(self.generators[0].path))
        else:
            self.result_panel.show(None, "No vessel-to-fundus generator is installed.\n\nUse Open… to choose a "
                                         "generator.keras made by `python -m training pix2pix`, or install the "
                                         "full app, which ships models/vessels/generator.keras.")
            self.generate_button.state(["disabled"])

    def _build(self) -> None:
        controls = ttk.Frame(self)
        controls.pack(side="left", fill="y", padx=(0, 10))
        ttk.Label(controls, text="Generator").pack(anchor="w")
        row = ttk.Frame(controls)
        row.pack(fill="x")
        self.generator_label = ttk.Label(row, text="none", width=28)
        self.generator_label.pack(side="left")
        ttk.Button(row, text="Open…", width=7, command=self.browse_generator).pack(side="left", padx=(4, 0))
        ttk.Label(controls, text="Colour style (learned from)").pack(anchor="w", pady=(10, 0))
        self.style_var = tk.StringVar()
        self.style_box = ttk.Combobox(controls, textvariable=self.style_var, state="disabled", width=20)
        self.style_box.pack(anchor="w")

        ttk.Label(controls, text="Vessel mask").pack(anchor="w", pady=(12, 0))
        masks = ttk.Frame(controls)
        masks.pack(fill="x")
        ttk.Button(masks, text="Open mask…", command=self.browse_mask).pack(side="left")
        ttk.Button(masks, text="Random sample", command=self.random_mask).pack(side="left", padx=(4, 0))
        draw = ttk.Frame(controls)
        draw.pack(fill="x", pady=(6, 0))
        ttk.Label(draw, text="Draw with the mouse; brush").pack(side="left")
        self.brush_var = tk.IntVar(value=5)
        ttk.Spinbox(draw, from_=1, to=20, textvariable=self.brush_var, width=4).pack(side="left", padx=(4, 0))
        ttk.Button(controls, text="Clear the mask", command=self.clear_mask).pack(anchor="w", pady=(6, 0))
        self.mask_label = ttk.Label(controls, text="Empty mask", style="Status.TLabel", wraplength=300)
        self.mask_label.pack(anchor="w", pady=(4, 0))

        self.generate_button = ttk.Button(controls, text="Generate", style="Accent.TButton", command=self.generate)
        self.generate_button.pack(fill="x", pady=(14, 0))
        self.export_button = ttk.Button(controls, text="Export…", command=self.export)
        self.export_button.pack(fill="x", pady=(6, 0))
        self.export_button.state(["disabled"])
        self.note = ttk.Label(controls, text="", wraplength=300, justify="left", style="Status.TLabel")
        self.note.pack(anchor="w", pady=(10, 0))

        pair = ttk.Frame(self)
        pair.pack(side="left", fill="both", expand=True)
        pair.columnconfigure((0, 1), weight=1, uniform="pair")
        pair.rowconfigure(1, weight=1)
        ttk.Label(pair, text="Vessel mask (source)").grid(row=0, column=0, sticky="w")
        ttk.Label(pair, text="Synthetic photograph (result)").grid(row=0, column=1, sticky="w")
        self.mask_panel = ImagePanel(pair, "")
        self.mask_panel.grid(row=1, column=0, sticky="nsew", padx=(0, 4))
        self.result_panel = ImagePanel(pair, "Open, sample or draw a mask, then Generate.")
        self.result_panel.grid(row=1, column=1, sticky="nsew", padx=(4, 0))
        ttk.Label(pair, text="Synthetic images made by a generative model: not patient data, not for diagnosis.",
                  style="Notice.TLabel").grid(row=2, column=0, columnspan=2, sticky="w", pady=(4, 0))
        canvas = self.mask_panel.canvas
        canvas.bind("<ButtonPress-1>", self._pen_down)
        canvas.bind("<B1-Motion>", self._pen_moved)
        canvas.bind("<ButtonRelease-1>", lambda _e: setattr(self, "_last_point", None))
        self._show_mask()

    # generator
    def browse_generator(self) -> None:
        chosen = dialogs.ask_generator(self, "Open a vessel-to-fundus generator")
        if chosen is not None:
            self._open(chosen)

    def _open(self, path: Path) -> None:
        self.generate_button.state(["disabled"])
        self.tab.worker.submit("vessel generator", open_generator, path, on_done=self.generator_opened,
                               on_error=self.tab.failure(), on_end=self.request_finished)

    def generator_opened(self, generator) -> None:
        if generator.info.kind != VESSEL_TO_FUNDUS:
            self.note.configure(text=f"{generator.info.path.name} is a class-conditional GAN; open it on the "
                                     "Synthetic images page. This page needs a vessel-to-fundus generator.")
            return
        self.generator = generator
        self.generator_label.configure(text=f"{generator.info.path.parent.name}/{generator.info.path.name}")
        styles = list(generator.info.styles)
        self.style_box.configure(values=styles, state="readonly")
        if self.style_var.get() not in styles:
            self.style_var.set(styles[0])
        self.generate_button.state(["!disabled"])

    # the mask
    def browse_mask(self) -> None:
        path = dialogs.ask_image(self)
        if path is not None:
            self.tab.worker.submit("vessel mask", load_mask_job, path, on_done=self._mask_loaded,
                                   on_error=self.tab.failure(lambda _message: self.request_finished()))

    def _mask_loaded(self, opened: OpenedMask) -> None:
        self.set_mask(opened.vessels, opened.path.name)

    def set_mask(self, vessels: np.ndarray, source: str, fov: np.ndarray | None = None) -> None:
        self.vessels = np.asarray(Image.fromarray(vessels).resize((EDIT_SIZE, EDIT_SIZE), Image.Resampling.NEAREST))
        self.fov = default_fov(EDIT_SIZE) if fov is None else fov
        self.mask_source = source
        self.mask_label.configure(text=source)
        self._show_mask()

    def random_mask(self) -> None:
        seed = random.randrange(1_000_000)
        vessels, fov = random_vessel_tree(EDIT_SIZE, seed)
        self.set_mask(vessels, f"random vessel tree, seed {seed} (made up, not anatomy)", fov)

    def clear_mask(self) -> None:
        self.set_mask(np.zeros((EDIT_SIZE, EDIT_SIZE), bool), "empty mask: draw vessels with the mouse")

    def _show_mask(self) -> None:
        shown = np.where(self.vessels, 255, np.where(self.fov, 40, 0)).astype(np.uint8)
        self.mask_panel.show(Image.fromarray(shown).convert("RGB"))

    def _to_mask(self, event) -> tuple[int, int] | None:
        shown = self.mask_panel.displayed
        if shown is None:
            return None
        canvas = self.mask_panel.canvas
        left = (canvas.winfo_width() - shown.width) / 2
        top = (canvas.winfo_height() - shown.height) / 2
        x, y = (event.x - left) * EDIT_SIZE / shown.width, (event.y - top) * EDIT_SIZE / shown.height
        return (int(x), int(y)) if 0 <= x < EDIT_SIZE and 0 <= y < EDIT_SIZE else None

    def _pen_down(self, event) -> None:
        self._last_point = self._to_mask(event)
        self._pen_moved(event)

    def _pen_moved(self, event) -> None:
        point = self._to_mask(event)
        if point is None:
            return
        start = self._last_point or point
        picture = Image.fromarray(self.vessels.astype(np.uint8) * 255)
        ImageDraw.Draw(picture).line([start, point], fill=255, width=max(1, int(self.brush_var.get())))
        self.vessels = np.asarray(picture) > 127
        self._last_point = point
        if not self.mask_source.endswith("(edited)"):
            self.mask_source = (self.mask_source or "drawn") + " (edited)"
            self.mask_label.configure(text=self.mask_source)
        self._show_mask()

    # generating
    def generate(self) -> None:
        if self.generator is None:
            return
        if not self.vessels.any():
            self.note.configure(text="The mask is empty: open a mask, take a random sample or draw vessels first.")
            return
        self.generate_button.state(["disabled"])
        self.tab.worker.submit("vessel image", translate_job, self.generator, self.vessels.copy(),
                               self.fov.copy(), self.style_var.get(), request=self.requests.new(),
                               on_done=self.show, on_error=self.tab.failure(), on_end=self.request_finished)

    def show(self, made: Made) -> None:
        self.shown_token = self.requests.latest
        self.result = made.pixels
        self.result_style = made.style
        self.result_panel.show(Image.fromarray(made.pixels))
        self.export_button.state(["!disabled"])
        self.note.configure(text=f"{made.pixels.shape[1]} x {made.pixels.shape[0]} px in style {made.style}, "
                                 f"{made.seconds * 1000:.0f} ms.")

    def export(self) -> None:
        if self.result is None:
            return
        folder = dialogs.ask_export_folder(self, self.tab.last_export)
        if folder is None:
            return
        mask = np.asarray(Image.fromarray(self.vessels).resize(self.result.shape[:2][::-1], Image.Resampling.NEAREST))
        note = f"from vessel mask: {self.mask_source or 'drawn'}"
        mask_rgb = np.repeat(mask[..., None].astype(np.uint8) * 255, 3, axis=2)
        images = [SyntheticImage(mask_rgb, "vessel_mask", note=note),
                  SyntheticImage(self.result, f"fundus_{self.result_style}", note=note)]
        written = dialogs.export_confirmed(self, images, folder, self.generator.info.path if self.generator else "")
        if written is None:
            return
        self.tab.last_export = folder
        self.tab.app.set_status(f"Exported the mask, the synthetic photograph and manifest.csv to {written[0].parent}")

    def request_finished(self) -> None:
        if self.generator is not None:
            self.generate_button.state(["!disabled"])
