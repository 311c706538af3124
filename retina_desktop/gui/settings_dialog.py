"""The Settings dialog: image checks on or off, the "unsure" confidence, and each check
threshold with the value fitted for the loaded model beside the user's override.

Tk thread only. The dialog edits a copy of the settings and hands it to `on_save`; it never
touches the model.
"""

from __future__ import annotations

import dataclasses
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from retina_desktop.core.model_card import CheckThresholds, ModelMetadata
from retina_desktop.core.settings import Settings

LABELS = {
    "min_side": "Smallest image side (pixels)",
    "min_brightness": "Darkest mean brightness (0-255)",
    "max_saturated": "Largest overexposed fraction (0-1)",
    "min_sharpness": "Least sharpness",
    "min_field_of_view": "Least field of view, fundus (0-1)",
    "min_modality_probability": "Least belief in the model's modality (0-1)",
}


class SettingsDialog(tk.Toplevel):
    def __init__(self, parent, settings: Settings, metadata: ModelMetadata | None,
                 on_save: Callable[[Settings], None]) -> None:
        super().__init__(parent)
        self.title("Settings")
        self.transient(parent)
        self.resizable(False, False)
        self.on_save = on_save
        fitted = CheckThresholds.from_dict((metadata.checks if metadata else {}).get("thresholds"))
        source = "fitted on this model's validation images" if metadata and metadata.checks else "defaults"

        body = ttk.Frame(self, padding=14)
        body.grid(sticky="nsew")
        self.checks_var = tk.BooleanVar(value=settings.checks_enabled)
        ttk.Checkbutton(body, text="Check each image before showing an answer", variable=self.checks_var).grid(
            row=0, column=0, columnspan=3, sticky="w")
        ttk.Label(body, text="Call an answer unsure below (confidence, 0-1)").grid(
            row=1, column=0, sticky="w", pady=(8, 0))
        self.unsure_var = tk.StringVar(value=f"{settings.unsure_below:g}")
        ttk.Entry(body, textvariable=self.unsure_var, width=10).grid(row=1, column=2, sticky="w", pady=(8, 0))

        # The model's decision rule is part of every answer, so it is shown here, read-only:
        # it was chosen on the validation split and travels with the model, not the user.
        ttk.Label(body, text="Model's decision").grid(row=19, column=0, sticky="nw", pady=(12, 0))
        self.decision_text = metadata.decision_text() if metadata is not None else "no model loaded"
        ttk.Label(body, text=self.decision_text, wraplength=420, justify="left", foreground="#333333").grid(
            row=19, column=1, columnspan=2, sticky="w", padx=10, pady=(12, 0))

        ttk.Label(body, text="Check", style="Heading.TLabel").grid(row=2, column=0, sticky="w", pady=(14, 4))
        ttk.Label(body, text=f"Model value ({source})").grid(row=2, column=1, sticky="w", padx=10, pady=(14, 4))
        ttk.Label(body, text="Your value (blank: model's)").grid(row=2, column=2, sticky="w", pady=(14, 4))
        self.override_vars: dict[str, tk.StringVar] = {}
        for row, f in enumerate(dataclasses.fields(CheckThresholds), start=3):
            ttk.Label(body, text=LABELS.get(f.name, f.name)).grid(row=row, column=0, sticky="w")
            ttk.Label(body, text=f"{getattr(fitted, f.name):g}").grid(row=row, column=1, sticky="w", padx=10)
            overridden = f.name in settings.check_overrides
            var = tk.StringVar(value=f"{settings.check_overrides[f.name]:g}" if overridden else "")
            ttk.Entry(body, textvariable=var, width=10).grid(row=row, column=2, sticky="w", pady=1)
            self.override_vars[f.name] = var

        self.error_var = tk.StringVar()
        ttk.Label(body, textvariable=self.error_var, foreground="#a01818").grid(
            row=20, column=0, columnspan=3, sticky="w")
        buttons = ttk.Frame(body)
        buttons.grid(row=21, column=0, columnspan=3, sticky="e", pady=(10, 0))
        ttk.Button(buttons, text="Use model values", command=self.reset).pack(side="left", padx=4)
        ttk.Button(buttons, text="Cancel", command=self.destroy).pack(side="left", padx=4)
        self.save_button = ttk.Button(buttons, text="Save", style="Accent.TButton", command=self.save)
        self.save_button.pack(side="left", padx=4)
        self.bind("<Escape>", lambda _e: self.destroy())

    def reset(self) -> None:
        for var in self.override_vars.values():
            var.set("")

    def collect(self) -> Settings:
        """The settings as entered; raises ValueError naming the field that is not a number."""
        overrides = {}
        for name, var in self.override_vars.items():
            text = var.get().strip()
            if text:
                try:
                    overrides[name] = float(text)
                except ValueError:
                    raise ValueError(f"{LABELS.get(name, name)}: {text!r} is not a number") from None
        try:
            unsure = float(self.unsure_var.get())
        except ValueError:
            raise ValueError(f"Unsure below: {self.unsure_var.get()!r} is not a number") from None
        if not 0 <= unsure <= 1:
            raise ValueError("Unsure below must be between 0 and 1")
        return Settings(checks_enabled=self.checks_var.get(), check_overrides=overrides, unsure_below=unsure)

    def save(self) -> None:
        try:
            settings = self.collect()
        except ValueError as err:
            self.error_var.set(str(err))
            return
        self.on_save(settings)
        self.destroy()
