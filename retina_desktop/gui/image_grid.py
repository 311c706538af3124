"""A scrollable grid of captioned thumbnails: click selects, double-click opens one large."""

from __future__ import annotations

import math
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from PIL import Image, ImageOps, ImageTk

BACKGROUND = "#1e1e1e"
SELECTED = "#f0a030"
CAPTION = "#d8d8d8"
CAPTION_HEIGHT = 46  # the least room under each picture: three short lines
CAPTION_FONT = ("TkDefaultFont", 8)
MAX_COLUMNS = 8


class ImageGrid(ttk.Frame):
    """Thumbnails in rows; `selected` holds the chosen indices. Tk thread only."""

    def __init__(self, parent, placeholder: str = "", on_open: Callable[[int], None] | None = None) -> None:
        super().__init__(parent)
        self.canvas = tk.Canvas(self, background=BACKGROUND, highlightthickness=0, width=560, height=400)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.canvas.yview)
        self.canvas.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.canvas.pack(side="left", fill="both", expand=True)
        self.placeholder = placeholder
        self.on_open = on_open
        self.images: list[Image.Image] = []
        self.captions: list[str] = []
        self.selected: set[int] = set()
        self._photos: list[ImageTk.PhotoImage] = []  # thumbnails at side `_photo_side`
        self._photo_side = 0
        self._cells: list[tuple[int, int, int]] = []  # x, y, side of each picture
        self._width = 0
        self.canvas.bind("<Configure>", self._resized)
        self.canvas.bind("<Button-1>", self._clicked)
        self.canvas.bind("<Double-Button-1>", self._double_clicked)
        for wheel in ("<Button-4>", "<Button-5>", "<MouseWheel>"):
            self.canvas.bind(wheel, self._wheel)

    def show(self, images: list[Image.Image], captions: list[str] | None = None,
             placeholder: str | None = None) -> None:
        """Replace the grid's contents (an empty list shows the placeholder)."""
        self.images = list(images)
        self.captions = list(captions or [""] * len(self.images))
        self.selected = set()
        self._photos, self._photo_side = [], 0
        if placeholder is not None:
            self.placeholder = placeholder
        self.canvas.yview_moveto(0)
        self._draw()

    def set_captions(self, captions: list[str]) -> None:
        self.captions = list(captions)
        self._draw()

    def toggle(self, index: int) -> None:
        self.selected ^= {index}
        self._draw()

    def _resized(self, event) -> None:
        if event.width != self._width:
            self._width = event.width
            self._draw()

    def _layout(self, count: int, width: int) -> tuple[int, int]:
        columns = min(MAX_COLUMNS, max(1, math.ceil(math.sqrt(count * 1.5))))
        side = max(48, min(220, (width - 8) // columns - 8))
        return columns, side

    def _draw(self) -> None:
        canvas = self.canvas
        canvas.delete("all")
        width = max(canvas.winfo_width(), 200)
        self._cells = []
        if not self.images:
            canvas.create_text(width // 2, 120, text=self.placeholder, fill="#c8c8c8", width=max(width - 60, 120),
                               font=("TkDefaultFont", 11), justify="center")
            canvas.configure(scrollregion=(0, 0, width, 240))
            return
        columns, side = self._layout(len(self.images), width)
        if side != self._photo_side:  # a click or a new caption redraws; only a new size rescales
            # Each picture fills its square cell along its longer side: a wide OCT B-scan keeps
            # its proportions and is centred vertically.
            self._photos = [
                ImageTk.PhotoImage(ImageOps.contain(
                    image, (side, side),
                    Image.Resampling.NEAREST if image.width * 2 <= side else Image.Resampling.LANCZOS))
                for image in self.images
            ]
            self._photo_side = side
        caption_height = self._caption_height(side)
        for index, (photo, caption) in enumerate(zip(self._photos, self.captions)):
            row, column = divmod(index, columns)
            x, y = 8 + column * (side + 8), 8 + row * (side + caption_height + 8)
            self._cells.append((x, y, side))
            canvas.create_image(x + (side - photo.width()) // 2, y + (side - photo.height()) // 2, image=photo,
                                anchor="nw")
            if index in self.selected:
                canvas.create_rectangle(x - 3, y - 3, x + side + 2, y + side + 2, outline=SELECTED, width=3)
            canvas.create_text(x, y + side + 3, text=caption, anchor="nw", fill=CAPTION, width=side,
                               font=CAPTION_FONT)
        rows = math.ceil(len(self.images) / columns)
        canvas.configure(scrollregion=(0, 0, width, 16 + rows * (side + caption_height + 8)))

    def _caption_height(self, side: int) -> int:
        """Room under each picture for the tallest caption at this width: a caption such as
        "model: diabetic retinopathy 55% (unsure)" wraps to a fourth line in a narrow cell, and
        a fixed height cut its last line off under the next row."""
        tallest = 0
        for caption in set(self.captions):
            item = self.canvas.create_text(0, 0, text=caption, anchor="nw", width=side, font=CAPTION_FONT)
            _, top, _, bottom = self.canvas.bbox(item)
            self.canvas.delete(item)
            tallest = max(tallest, bottom - top)
        return max(CAPTION_HEIGHT, tallest + 6)

    def _index_at(self, event) -> int | None:
        x, y = self.canvas.canvasx(event.x), self.canvas.canvasy(event.y)
        for index, (cx, cy, side) in enumerate(self._cells):
            if cx <= x < cx + side and cy <= y < cy + side:
                return index
        return None

    def _clicked(self, event) -> None:
        index = self._index_at(event)
        if index is not None:
            self.toggle(index)

    def _double_clicked(self, event) -> None:
        index = self._index_at(event)
        if index is not None and self.on_open is not None:
            self.toggle(index)  # undo the single click that came first
            self.on_open(index)

    def _wheel(self, event) -> None:
        step = -1 if getattr(event, "num", 0) == 4 or getattr(event, "delta", 0) > 0 else 1
        self.canvas.yview_scroll(step * 2, "units")


class LargeView(tk.Toplevel):
    """One picture shown large with its caption, in its own window."""

    def __init__(self, parent, image: Image.Image, caption: str, side: int = 512,
                 generated: tuple[int, int] | None = None) -> None:
        super().__init__(parent)
        self.title(caption.split("\n")[0] or "Image")
        resample = Image.Resampling.BICUBIC if image.width < side else Image.Resampling.LANCZOS
        self.photo = ImageTk.PhotoImage(image.resize((side, side * image.height // image.width), resample))
        tk.Label(self, image=self.photo, background=BACKGROUND).pack(padx=8, pady=8)
        ttk.Label(self, text=caption, justify="left").pack(anchor="w", padx=10)
        width, height = generated or image.size
        shown = ("shown enlarged" if (width, height) == image.size
                 else f"shown at {image.width} x {image.height}, the proportions of the images it learned from")
        ttk.Label(self, text=f"Generated at {width} x {height} pixels; {shown}.",
                  style="Status.TLabel").pack(anchor="w", padx=10, pady=(0, 8))
        ttk.Button(self, text="Close", command=self.destroy).pack(pady=(0, 8))
        self.bind("<Escape>", lambda _e: self.destroy())
