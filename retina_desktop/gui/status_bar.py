"""The status bar: the latest message on the left, the open model on the right, both cut to
the room they have (ending in "…", the full text in a tooltip), and a busy indicator.

A message that does not fit is elided rather than clipped at the window edge, and the model's
description never takes more than half the bar, so the message always has room. Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import font as tkfont
from tkinter import ttk

ELLIPSIS = "…"
# The most of the bar's width the model's description may take.
MODEL_SHARE = 0.5


def elide(text: str, width: int, measure) -> str:
    """The longest start of `text` that fits `width` pixels with "…" after it (all of it when it
    fits). `measure(str) -> pixels`."""
    if measure(text) <= width:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix whose elided form fits
        middle = (low + high + 1) // 2
        if measure(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS


class Tooltip:
    """A small window with `text()` shown while the pointer rests on `widget` ("" shows none)."""

    DELAY_MS = 400

    def __init__(self, widget: tk.Widget, text) -> None:
        self.widget = widget
        self.text = text
        self.window: tk.Toplevel | None = None
        self._after: str | None = None
        widget.bind("<Enter>", self._schedule, add="+")
        widget.bind("<Leave>", self.hide, add="+")
        widget.bind("<ButtonPress>", self.hide, add="+")

    def _schedule(self, _event=None) -> None:
        self._cancel()
        self._after = self.widget.after(self.DELAY_MS, self.show)

    def _cancel(self) -> None:
        if self._after is not None:
            self.widget.after_cancel(self._after)
            self._after = None

    def show(self) -> None:
        self._after = None
        text = self.text()
        if not text or self.window is not None:
            return
        window = tk.Toplevel(self.widget)
        window.wm_overrideredirect(True)
        ttk.Label(window, text=text, background="#ffffe0", relief="solid", borderwidth=1, padding=(6, 3),
                  wraplength=max(300, self.widget.winfo_toplevel().winfo_width() - 40)).pack()
        window.update_idletasks()
        x = self.widget.winfo_rootx()
        y = self.widget.winfo_rooty() - window.winfo_reqheight() - 4
        screen = self.widget.winfo_screenwidth()
        x = max(0, min(x, screen - window.winfo_reqwidth()))
        window.wm_geometry(f"+{x}+{max(0, y)}")
        self.window = window

    def hide(self, _event=None) -> None:
        self._cancel()
        if self.window is not None:
            self.window.destroy()
            self.window = None


class ElidedLabel(ttk.Label):
    """A one-line label showing as much of `variable`'s text as fits its width, the rest as "…",
    with the full text in a tooltip when cut."""

    def __init__(self, parent, variable: tk.StringVar, **options) -> None:
        # width=1: the label asks for no room of its own; the layout gives it its width.
        super().__init__(parent, width=1, **options)
        self.variable = variable
        variable.trace_add("write", lambda *_: self.fit())
        self.bind("<Configure>", lambda _e: self.fit(), add="+")
        self.tooltip = Tooltip(self, lambda: self.full_text if self.elided else "")
        self.fit()

    @property
    def full_text(self) -> str:
        return self.variable.get()

    @property
    def elided(self) -> bool:
        return str(self.cget("text")) != self.full_text

    def font(self) -> tkfont.Font:
        style = str(self.cget("style")) or "TLabel"
        name = ttk.Style(self).lookup(style, "font") or "TkDefaultFont"
        try:
            return tkfont.nametofont(name)
        except tk.TclError:
            return tkfont.Font(self, font=name)

    def fit(self) -> None:
        width = self.winfo_width()
        text = self.full_text
        if width <= 1:  # not laid out yet: the next <Configure> fits it
            self.configure(text=text)
            return
        font = self.font()
        self.configure(text=elide(text, width - 4, font.measure))


class StatusBar(ttk.Frame):
    """The message, a busy indicator when `busy(True)`, and the model's description."""

    def __init__(self, parent, status_var: tk.StringVar, model_var: tk.StringVar) -> None:
        super().__init__(parent, padding=(10, 3))
        self.model_var = model_var
        self.message = ElidedLabel(self, status_var, style="Status.TLabel", anchor="w")
        self.message.grid(row=0, column=0, sticky="ew")
        self.activity = ttk.Progressbar(self, mode="indeterminate", length=90)
        self.model = ElidedLabel(self, model_var, style="Status.TLabel", anchor="e")
        self.model.grid(row=0, column=2, sticky="ew", padx=(12, 0))
        self.columnconfigure(0, weight=1)
        self.bind("<Configure>", lambda _e: self._share(), add="+")
        model_var.trace_add("write", lambda *_: self._share())

    def _share(self) -> None:
        width = self.winfo_width()
        if width <= 1:
            return
        need = self.model.font().measure(self.model_var.get()) + 8
        self.columnconfigure(2, minsize=min(need, int(width * MODEL_SHARE)))

    def busy(self, on: bool) -> None:
        if on:
            self.activity.grid(row=0, column=1, padx=(8, 0))
            self.activity.start(15)
        else:
            self.activity.stop()
            self.activity.grid_remove()
