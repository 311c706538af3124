"""The Augment tab: a placeholder until the GAN's tab lands (its own issue)."""

from __future__ import annotations

from tkinter import ttk


class AugmentTab(ttk.Frame):
    def __init__(self, parent) -> None:
        super().__init__(parent, padding=24)
        ttk.Label(self, text="Augment", style="Heading.TLabel").pack(anchor="w")
        ttk.Label(
            self,
            text=(
                "This tab will show synthetic retinal images drawn from the project's GAN, "
                "the generator that grows scarce disease classes for training.\n\n"
                "It comes with the GAN (a separate piece of work) and is not available in this version."
            ),
            wraplength=640,
            justify="left",
        ).pack(anchor="w", pady=(8, 0))
