"""The image panel: a picture scaled to fit its space, or a short placeholder text."""

from __future__ import annotations

import tkinter as tk
from tkinter import ttk

from PIL import Image, ImageTk


class ImagePanel(ttk.Frame):
    """Shows one PIL image scaled to fit (never enlarged past 2x), centred on a dark canvas."""

    BACKGROUND = "#1e1e1e"

    def __init__(self, parent, placeholder: str = "") -> None:
        super().__init__(parent)
        self.canvas = tk.Canvas(self, background=self.BACKGROUND, highlightthickness=0, width=320, height=240)
        self.canvas.pack(fill="both", expand=True)
        self._image: Image.Image | None = None
        self._photo: ImageTk.PhotoImage | None = None
        self._placeholder = placeholder
        # What is on screen now (scaled), for tests and screenshots.
        self.displayed: Image.Image | None = None
        self.canvas.bind("<Configure>", lambda _e: self._redraw())

    def show(self, image: Image.Image | None, placeholder: str | None = None) -> None:
        """Display `image` (or the placeholder text when None). Tk thread only."""
        self._image = image
        if placeholder is not None:
            self._placeholder = placeholder
        self._redraw()

    def _redraw(self) -> None:
        self.canvas.delete("all")
        width, height = max(self.canvas.winfo_width(), 2), max(self.canvas.winfo_height(), 2)
        if self._image is None:
            self.displayed = None
            self._photo = None
            self.canvas.create_text(width // 2, height // 2, text=self._placeholder, fill="#c8c8c8",
                                    font=("TkDefaultFont", 12), justify="center", width=max(width - 40, 100))
            return
        scale = min(width / self._image.width, height / self._image.height, 2.0)
        size = (max(int(self._image.width * scale), 1), max(int(self._image.height * scale), 1))
        shown = self._image if size == self._image.size else self._image.resize(size, Image.Resampling.BILINEAR)
        self.displayed = shown
        self._photo = ImageTk.PhotoImage(shown)
        self.canvas.create_image(width // 2, height // 2, image=self._photo, anchor="center")
