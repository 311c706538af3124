"""The Augment tab's "Synthetic images" page: sample a GAN, vary, interpolate, judge, export.

Every generator call and every classifier call runs on the augment worker, submitted with the
callbacks that take its result; a result for an older request than the newest is dropped by
the worker.
"""

from __future__ import annotations

import random
import tkinter as tk
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import ttk
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from retina_desktop.core.errors import UserError
from retina_desktop.core.prediction import Prediction
from retina_desktop.gui import dialogs
from retina_desktop.gui.image_grid import ImageGrid, LargeView
from retina_desktop.gui.worker import Request, Requests
from retina_desktop.services.pictures import fit_image
from retina_desktop.services.report import display_name
from retina_desktop.services.synthetic_samples import (
    CONDITIONAL,
    Generator,
    GeneratorInfo,
    SyntheticImage,
    as_seen,
    interpolate,
    open_generator,
    sample,
    shipped_generators,
    vary,
)

if TYPE_CHECKING:  # only the annotation needs it
    from retina_desktop.gui.service_api import ClassifierService

COUNTS = (4, 8, 16, 32, 64)
CHUNK = 8  # images per generator call, so progress moves and a 64-grid still feels quick


@dataclass(frozen=True)
class Batch:
    """The images of one request."""

    images: list[SyntheticImage]
    what: str
    info: GeneratorInfo  # of the generator that made them: how they are shown


@dataclass(frozen=True)
class Progress:
    """How many of a request's images are made."""

    done: int
    total: int


@dataclass(frozen=True)
class Judged:
    """The classifier's label and confidence for each image."""

    labels: list[tuple[str, float]]
    model: str
    # Each image's answer worded by the one rule (records.Answer), for the captions.
    answers: list = field(default_factory=list)


# ---- jobs: these run on the augment worker ---------------------------------------------------


def open_generator_job(path: Path):
    return open_generator(path)


def sample_job(generator, label: str, n: int, seed: int, progress) -> Batch:
    images: list[SyntheticImage] = []
    for start in range(0, n, CHUNK):
        images += sample(generator, label, min(CHUNK, n - start), seed, start=start)
        progress(Progress(len(images), n))
    return Batch(images, f"{n} × {display_name(label)}, seed {seed}", generator.info)


def vary_job(generator, image: SyntheticImage, n: int, strength: float, seed: int) -> Batch:
    return Batch([image] + vary(generator, image, n - 1, strength, seed),
                 f"variations of {display_name(image.label)} seed {image.seed} #{image.latent_index} "
                 "(first: the original)",
                 generator.info)


def interpolate_job(generator, start, end, steps: int) -> Batch:
    return Batch(interpolate(generator, start, end, steps),
                 f"interpolation {display_name(start[0])} → {display_name(end[0])}", generator.info)


def judge_job(classifier: ClassifierService, images: list[SyntheticImage]) -> Judged:
    """The open classifier's answer for each image, fitted to its input like any photo."""
    bundle = classifier.bundle()
    metadata = bundle.metadata
    fitted = np.stack([fit_image(Image.fromarray(i.pixels), metadata.input) for i in images])
    probabilities = classifier.predict_arrays(fitted)
    labels, answers = [], []
    unsure_below = classifier.settings.unsure_below
    for fitted_image, probs in zip(fitted, probabilities):
        index = metadata.label_for(list(probs))
        labels.append((metadata.classes[index], float(probs[index])))
        # Synthetic images are not checked: the answer is the model's, worded as everywhere else.
        prediction = Prediction("", metadata.classes[index], float(probs[index]),
                                dict(zip(metadata.classes, map(float, probs))), fitted_image, metadata.name,
                                operating_point=metadata.operating_point(), unsure_below=unsure_below)
        answers.append(prediction.answer())
    return Judged(labels, metadata.name, answers)


# ---- the page: Tk thread only ------------------------------------------------------------------


class SyntheticPanel(ttk.Frame):
    def __init__(self, parent, tab) -> None:
        super().__init__(parent, padding=(8, 8))
        self.tab = tab
        self.generators = [g for g in shipped_generators() if g.kind == CONDITIONAL]
        self.generator: Generator | None = None  # once opened (on the worker)
        self.images: list[SyntheticImage] = []
        self.shown_info: GeneratorInfo | None = None  # the generator that made `images`
        self.judged: list[tuple[str, float]] | None = None
        self.judged_answers: list = []
        self.requests = Requests()  # one per Generate, Vary or Interpolate
        self._opening: Path | None = None
        self._build()
        self.shown_token = 0  # the request whose images are on screen
        if self.generators:
            self.generator_box.current(0)
            self.after(1, self._generator_chosen)  # once the window (and its status bar) exists
        else:
            self._no_generator()

    def _build(self) -> None:
        controls = ttk.Frame(self)
        controls.pack(side="left", fill="y", padx=(0, 10))
        ttk.Label(controls, text="Generator").pack(anchor="w")
        row = ttk.Frame(controls)
        row.pack(fill="x")
        self.generator_var = tk.StringVar()
        self.generator_box = ttk.Combobox(row, textvariable=self.generator_var, state="readonly", width=30,
                                          values=[g.name for g in self.generators])
        self.generator_box.pack(side="left")
        self.generator_box.bind("<<ComboboxSelected>>", lambda _e: self._generator_chosen())
        ttk.Button(row, text="Open…", width=7, command=self.browse_generator).pack(side="left", padx=(4, 0))

        ttk.Label(controls, text="Class").pack(anchor="w", pady=(10, 0))
        self.class_var = tk.StringVar()
        self.class_box = ttk.Combobox(controls, textvariable=self.class_var, state="disabled", width=30)
        self.class_box.pack(anchor="w")

        grid = ttk.Frame(controls)
        grid.pack(fill="x", pady=(10, 0))
        ttk.Label(grid, text="How many").grid(row=0, column=0, sticky="w")
        self.count_var = tk.StringVar(value="16")
        self.count_box = ttk.Combobox(grid, textvariable=self.count_var, values=[str(c) for c in COUNTS],
                                      state="readonly", width=6)
        self.count_box.grid(row=1, column=0, sticky="w")
        ttk.Label(grid, text="Seed").grid(row=0, column=1, sticky="w", padx=(12, 0))
        self.seed_var = tk.StringVar(value="0")
        ttk.Spinbox(grid, from_=0, to=2**31 - 1, textvariable=self.seed_var, width=10).grid(
            row=1, column=1, padx=(12, 0))
        ttk.Button(grid, text="New", width=5, command=self.new_seed).grid(row=1, column=2, padx=(4, 0))

        self.generate_button = ttk.Button(controls, text="Generate", style="Accent.TButton", command=self.generate)
        self.generate_button.pack(fill="x", pady=(12, 0))
        self.progress = ttk.Progressbar(controls, mode="determinate", length=220)
        self.progress.pack(fill="x", pady=(6, 0))

        ttk.Separator(controls).pack(fill="x", pady=10)
        ttk.Label(controls, text="Select images in the grid (click), then:", style="Status.TLabel").pack(anchor="w")
        vary_row = ttk.Frame(controls)
        vary_row.pack(fill="x", pady=(4, 0))
        self.vary_button = ttk.Button(vary_row, text="Vary", width=8, command=self.vary)
        self.vary_button.pack(side="left")
        ttk.Label(vary_row, text="by").pack(side="left", padx=(6, 2))
        self.strength_var = tk.DoubleVar(value=0.3)
        ttk.Scale(vary_row, from_=0.05, to=0.8, variable=self.strength_var, length=120).pack(side="left")
        interp_row = ttk.Frame(controls)
        interp_row.pack(fill="x", pady=(6, 0))
        self.interpolate_button = ttk.Button(interp_row, text="Interpolate", command=self.interpolate)
        self.interpolate_button.pack(side="left")
        ttk.Label(interp_row, text="to").pack(side="left", padx=(6, 2))
        self.target_var = tk.StringVar(value="the 2nd selected")
        self.target_box = ttk.Combobox(interp_row, textvariable=self.target_var, state="readonly", width=16)
        self.target_box.pack(side="left")

        ttk.Separator(controls).pack(fill="x", pady=10)
        self.judge_var = tk.BooleanVar(value=False)
        ttk.Checkbutton(controls, text="Label each with the classifier's answer", variable=self.judge_var,
                        command=self._judge_toggled).pack(anchor="w")
        export_row = ttk.Frame(controls)
        export_row.pack(fill="x", pady=(10, 0))
        self.export_selected_button = ttk.Button(export_row, text="Export selected…",
                                                 command=lambda: self.export(selected_only=True))
        self.export_selected_button.pack(side="left")
        self.export_all_button = ttk.Button(export_row, text="Export all…",
                                            command=lambda: self.export(selected_only=False))
        self.export_all_button.pack(side="left", padx=(6, 0))
        self.note = ttk.Label(controls, text="", wraplength=300, justify="left", style="Status.TLabel")
        self.note.pack(anchor="w", pady=(10, 0))

        right = ttk.Frame(self)
        right.pack(side="left", fill="both", expand=True)
        self.what_var = tk.StringVar(value="")
        ttk.Label(right, textvariable=self.what_var).pack(anchor="w")
        self.grid_view = ImageGrid(right, "Choose a class and press Generate.", on_open=self.open_large)
        self.grid_view.pack(fill="both", expand=True)
        ttk.Label(right, text="Synthetic images made by a generative model: not patient data, not for diagnosis.",
                  style="Notice.TLabel").pack(anchor="w", pady=(4, 0))

    # generator
    def _no_generator(self) -> None:
        self.class_box.configure(values=[], state="disabled")
        self.generate_button.state(["disabled"])
        self.grid_view.show([], placeholder=(
            "No generator is installed with this copy of Retina Desktop.\n\n"
            "Use Open… to choose a generator.keras made by `python -m training gan` "
            "(its generator.json must lie beside it), or install the full app, "
            "which ships models/generator.keras."))

    def _generator_chosen(self) -> None:
        index = self.generator_box.current()
        if 0 <= index < len(self.generators):
            self._open(self.generators[index].path)

    def browse_generator(self) -> None:
        chosen = dialogs.ask_generator(self)
        if chosen is not None:
            self._open(chosen)

    def _open(self, path: Path) -> None:
        self._opening = path
        self.generator = None
        self.generate_button.state(["disabled"])
        self.tab.app.set_status(f"Opening generator {path.name}…")
        self.tab.worker.submit("generator", open_generator_job, path, on_done=self.generator_opened,
                               on_error=self.tab.failure(self.generator_failed))

    def generator_opened(self, generator) -> None:
        if self._opening is not None and generator.info.path != self._opening:
            return
        self._opening = None
        self.generator = generator
        info = generator.info
        if all(g.path != info.path for g in self.generators):
            self.generators.append(info)
            self.generator_box.configure(values=[g.name for g in self.generators])
        self.generator_box.current([g.path for g in self.generators].index(info.path))
        names = [display_name(c) for c in info.classes]
        self.class_box.configure(values=names, state="readonly")
        if self.class_var.get() not in names:
            self.class_var.set(names[0])
        self.target_box.configure(values=["the 2nd selected"] + names)
        self.generate_button.state(["!disabled"])
        self.tab.app.set_status(f"Generator ready: {info.name}, {info.size} px, classes {', '.join(names)}.")

    def generator_failed(self, message: str) -> None:
        self._opening = None
        if self.generator is None:
            self.generate_button.state(["disabled"])
        self.note.configure(text=message)

    # requests
    def _label(self) -> str:
        if self.generator is None:
            raise UserError("Open a generator first.")
        classes = self.generator.info.classes
        names = [display_name(c) for c in classes]
        if self.class_var.get() not in names:
            raise UserError(f"Choose one of the generator's classes: {', '.join(names)}.")
        return classes[names.index(self.class_var.get())]

    def _seed(self) -> int:
        try:
            return int(self.seed_var.get())
        except ValueError:
            raise UserError(f"The seed must be a whole number, not {self.seed_var.get()!r}.") from None

    def new_seed(self) -> None:
        self.seed_var.set(str(random.randrange(0, 1_000_000)))

    def _submit(self, job, *args, total: int, reports_progress: bool = False) -> None:
        self.progress.configure(maximum=total, value=0)
        self.generate_button.state(["disabled"])
        self.tab.app.set_status("Generating…")
        self.tab.worker.submit("images", job, *args, request=self.requests.new(), on_done=self.show,
                               on_progress=self.progress_made if reports_progress else None,
                               on_error=self.tab.failure(), on_end=self.request_finished)

    def generate(self) -> None:
        if self.generator is None:
            return
        n = int(self.count_var.get())
        self._submit(sample_job, self.generator, self._label(), n, self._seed(), total=n, reports_progress=True)

    def _selected(self) -> list[SyntheticImage]:
        return [self.images[i] for i in sorted(self.grid_view.selected)]

    def vary(self) -> None:
        chosen = [i for i in self._selected() if i.latent_index is not None]
        if self.generator is None or not chosen:
            self.note.configure(text="Select an image made by Generate (click it), then Vary.")
            return
        n = max(8, min(16, int(self.count_var.get())))
        self._submit(vary_job, self.generator, chosen[0], n, float(self.strength_var.get()), self._seed(), total=n)

    def interpolate(self) -> None:
        chosen = [i for i in self._selected() if i.latent_index is not None]
        if self.generator is None or not chosen:
            self.note.configure(
                text="Select one image (to another class) or two images made by Generate, then Interpolate.")
            return
        start = (chosen[0].label, chosen[0].seed, chosen[0].latent_index)
        target = self.target_var.get()
        if target == "the 2nd selected":
            if len(chosen) < 2:
                self.note.configure(text="Select a second image, or choose a class to interpolate to.")
                return
            end = (chosen[1].label, chosen[1].seed, chosen[1].latent_index)
        else:
            names = [display_name(c) for c in self.generator.info.classes]
            end = (self.generator.info.classes[names.index(target)], start[1], start[2])  # same latent, other class
        self._submit(interpolate_job, self.generator, start, end, 8, total=8)

    def _judge_toggled(self) -> None:
        if self.judge_var.get() and self.images and self.judged is None:
            self._judge()
        self._show_captions()

    def _judge(self) -> None:
        if not self.tab.app.model_ready:
            self.note.configure(text="The classifier is still loading; labels follow when it is ready.")
            return
        model, made = self.tab.app.metadata, self.shown_info.modality if self.shown_info else "unknown"
        if model is not None and "unknown" not in (model.modality, made) and model.modality != made:
            # A fundus model's answer for an OCT B-scan is meaningless, not a finding.
            kind = {"oct": "OCT", "fundus": "fundus"}.get(made, made)
            article = "an" if kind[:1].lower() in "aeio" else "a"
            self.note.configure(text=f"The open model ({model.name}) reads {model.modality} images and these are "
                                     f"{kind}: open {article} {kind} model (File > Open model…) to label them.")
            return
        self.tab.worker.submit("judge", judge_job, self.tab.app.classifier, list(self.images),
                               request=Request(self.requests, self.shown_token),  # the images on screen
                               on_done=self.judged_done, on_error=self.tab.failure())

    # results
    def progress_made(self, made: Progress) -> None:
        self.progress.configure(maximum=made.total, value=made.done)

    def show(self, batch: Batch) -> None:
        self.images = batch.images
        self.shown_info = batch.info
        self.shown_token = self.requests.latest
        self.judged = None
        self.progress.configure(value=self.progress.cget("maximum"))
        self.what_var.set(batch.what)
        self.grid_view.show([as_seen(batch.info, i) for i in self.images], self._captions())
        self.tab.app.set_status(f"Generated {len(self.images)} synthetic images.")
        if self.judge_var.get():
            self._judge()

    def judged_done(self, judged: Judged) -> None:
        self.judged, self.judged_answers = judged.labels, judged.answers
        for image, (label, confidence) in zip(self.images, judged.labels):
            image.predicted, image.confidence = label, confidence
        agree = sum(1 for image, (label, _) in zip(self.images, judged.labels) if label == image.label)
        self.note.configure(text=f"{judged.model}: {agree} of {len(self.images)} images given the class they were "
                                 "generated as (model output, not ground truth).")
        self._show_captions()

    def request_finished(self) -> None:
        if self.generator is not None:
            self.generate_button.state(["!disabled"])

    def _captions(self) -> list[str]:
        """Short, so two or three lines fit under a thumbnail: the class is in the grid's title."""
        captions = []
        for k, image in enumerate(self.images):
            if image.latent_index is not None:
                first = f"{display_name(image.label)} s{image.seed} #{image.latent_index}"
            else:
                first = display_name(image.label) if "→" not in image.label else image.label
            if self.judge_var.get() and self.judged is not None:
                if k < len(self.judged_answers):
                    answer = self.judged_answers[k]
                    first += f"\nmodel: {display_name(answer.label)} {answer.short_basis()}"
                    first += " (unsure)" if answer.unsure else ""
                else:
                    label, confidence = self.judged[k]
                    first += f"\nmodel: {display_name(label)} {confidence:.0%}"
            captions.append(first)
        return captions

    def _show_captions(self) -> None:
        if self.images:
            self.grid_view.set_captions(self._captions())

    def open_large(self, index: int) -> None:
        image = self.images[index]
        if self.shown_info is None:
            return
        LargeView(self, as_seen(self.shown_info, image), self._captions()[index],
                  generated=(image.pixels.shape[1], image.pixels.shape[0]))

    # export
    def export(self, selected_only: bool) -> None:
        images = self._selected() if selected_only else list(self.images)
        if not images:
            self.note.configure(
                text="Nothing to export: generate images first" + (" and select some." if selected_only else "."))
            return
        folder = dialogs.ask_export_folder(self, self.tab.last_export)
        if folder is None:
            return
        written = dialogs.export_confirmed(self, images, folder, self.generator.info.path if self.generator else "")
        if written is None:
            return
        self.tab.last_export = folder
        self.tab.app.set_status(f"Exported {len(written) - 1} images and manifest.csv to {folder}")
