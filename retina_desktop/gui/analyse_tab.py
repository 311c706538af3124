"""The Analyse tab: one image, the model's output for it, the heatmap, and the report.

The tab keeps what is on screen; the model runs in jobs on the app's worker thread (the
module-level functions below), each submitted with the callbacks that take its result on the
Tk thread. A result for an image that is no longer the newest is dropped by the worker.
"""

from __future__ import annotations

import dataclasses
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk

import numpy as np
from PIL import Image

from retina_desktop.core.logs import log_unexpected
from retina_desktop.core.model_card import InputSpec
from retina_desktop.core.paths import bundle_root
from retina_desktop.core.prediction import Prediction
from retina_desktop.gui import dialogs
from retina_desktop.gui.host import TabHost
from retina_desktop.gui.image_panel import ImagePanel
from retina_desktop.gui.prob_chart import ProbabilityChart
from retina_desktop.gui.service_api import ClassifierService
from retina_desktop.gui.worker import Requests
from retina_desktop.services import pictures, report

# Largest side of the picture kept for display: more than any panel, far less than a photo.
DISPLAY_SIZE = 1600
SIDE_WIDTH = 360


@dataclass(frozen=True)
class Analysis:
    """What the worker found for one image, before its heatmap."""

    prediction: Prediction
    picture: Image.Image
    spec: InputSpec


@dataclass(frozen=True)
class Heatmap:
    """Grad-CAM for one class, or why there is none."""

    class_name: str
    values: np.ndarray | None
    problem: str = ""


# ---- jobs: these run on the worker thread ------------------------------------------------


def analyse_job(classifier: ClassifierService, path: Path, progress) -> Heatmap:
    """Classify `path`, report the prediction at once (`progress`), then compute the heatmap
    (worker thread)."""
    prediction = classifier.predict_file(path)
    assert prediction.picture is not None  # predict_file keeps the decoded picture
    # The picture the service decoded, not a second decoding of the file; the tab keeps only
    # this display copy.
    picture = Image.fromarray(prediction.picture)
    picture.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.LANCZOS)
    prediction = dataclasses.replace(prediction, picture=None)
    progress(Analysis(prediction, picture, classifier.bundle().metadata.input))
    return heatmap_job(classifier, prediction, prediction.label)


def heatmap_job(classifier: ClassifierService, prediction: Prediction, class_name: str) -> Heatmap:
    """Grad-CAM for one class (worker thread); a model it cannot explain is not an error."""
    try:
        values = classifier.heatmap(prediction, class_name)
    except ValueError as err:
        return Heatmap(class_name, None, f"No heatmap for this model: {err}")
    except Exception as err:  # a heatmap must never cost the user the result itself
        path = log_unexpected("Heatmap failed", err)
        return Heatmap(class_name, None, f"The heatmap could not be computed (see {path})")
    return Heatmap(class_name, values)


def report_job(classifier: ClassifierService, path: Path, prediction: Prediction, picture: Image.Image, heat,
               opacity: float,
               heatmap_class: str | None = None) -> Path:
    """Write the report, with the heatmap of `heatmap_class` (worker thread)."""
    metadata = classifier.bundle().metadata
    return report.export_report(
        path, prediction, image=np.asarray(picture), heatmap=heat, metadata=metadata, opacity=opacity,
        heatmap_class=heatmap_class,
    )


# ---- the tab: Tk thread only -------------------------------------------------------------


class AnalyseTab(ttk.Frame):
    def __init__(self, parent, app: TabHost) -> None:
        super().__init__(parent, padding=(10, 8))
        self.app = app
        self.prediction: Prediction | None = None
        self.picture: Image.Image | None = None
        self.spec: InputSpec | None = None
        self.heatmaps: dict[str, np.ndarray] = {}  # class name -> Grad-CAM over the model input
        self.busy_path: Path | None = None
        self.requests = Requests()  # one per image opened: only the newest is shown
        self._placed_for: tuple[str, int] | None = None
        self._placed: np.ndarray | None = None
        self._heatmap_status = ""  # the status message of the heatmap being computed
        self._build()

    # layout
    def _build(self) -> None:
        self.columnconfigure(0, weight=1)
        self.rowconfigure(1, weight=1)

        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, columnspan=2, sticky="ew", pady=(0, 8))
        self.browse_button = ttk.Button(bar, text="Browse…", command=self.browse, style="Accent.TButton")
        self.browse_button.pack(side="left")
        self.export_button = ttk.Button(bar, text="Export report…", command=self.export_report, state="disabled")
        self.export_button.pack(side="left", padx=(8, 0))
        self.file_label = ttk.Label(bar, text="No image open", foreground="#444444")
        self.file_label.pack(side="left", padx=(14, 0), fill="x", expand=True)

        self.panel = ImagePanel(
            self, placeholder="Open a fundus photograph or an OCT scan\n(Browse…, Ctrl+O, or drop a file here)"
        )
        self.panel.grid(row=1, column=0, sticky="nsew")

        side = ttk.Frame(self, width=SIDE_WIDTH, padding=(12, 0, 0, 0))
        side.grid(row=1, column=1, sticky="ns")
        side.grid_propagate(False)
        side.columnconfigure(0, weight=1)
        # The chart keeps some height in a short window (900 x 600): the probabilities matter more
        # than the heatmap box below, which is the part cut first.
        side.rowconfigure(4, weight=1, minsize=120)

        self.result_var = tk.StringVar(value="No result yet.")
        self.result_label = ttk.Label(side, textvariable=self.result_var, style="Result.TLabel",
                                      wraplength=SIDE_WIDTH - 20, justify="left")
        self.result_label.grid(row=0, column=0, sticky="ew")
        # Why a thresholded answer is what it is (records.Answer.explanation); hidden otherwise.
        self.explanation_var = tk.StringVar(value="")
        self.explanation_label = ttk.Label(side, textvariable=self.explanation_var, foreground="#333333",
                                           wraplength=SIDE_WIDTH - 20, justify="left")
        self.explanation_label.grid(row=1, column=0, sticky="ew", pady=(4, 0))
        self.explanation_label.grid_remove()
        self.warning_var = tk.StringVar(value="")
        self.warning_label = ttk.Label(side, textvariable=self.warning_var, style="Warning.TLabel",
                                       wraplength=SIDE_WIDTH - 36, justify="left", padding=(8, 6))
        self.warning_label.grid(row=2, column=0, sticky="ew", pady=(6, 0))
        self.warning_label.grid_remove()
        # For an image of the other modality: the model that reads it, and a button to open it.
        self.hint = ttk.Frame(side, style="Hint.TFrame", padding=(8, 4))
        self.hint.grid(row=3, column=0, sticky="ew", pady=(4, 0))
        self.hint.columnconfigure(0, weight=1)
        self.hint_var = tk.StringVar(value="")
        ttk.Label(self.hint, textvariable=self.hint_var, style="Hint.TLabel", wraplength=SIDE_WIDTH - 40,
                  justify="left").grid(
            row=0, column=0, sticky="ew")
        self.hint_button = ttk.Button(self.hint, text="Open that model", command=self._open_suggested)
        self.hint_button.grid(row=1, column=0, sticky="w", pady=(4, 0))
        self.hint.grid_remove()
        self.suggested_model: Path | None = None

        self.chart = ProbabilityChart(side)
        self.chart.grid(row=4, column=0, sticky="nsew", pady=(8, 8))

        box = ttk.LabelFrame(side, text="Heatmap (Grad-CAM)", padding=(10, 6))
        box.grid(row=5, column=0, sticky="ew")
        box.columnconfigure(1, weight=1)
        self.heatmap_var = tk.BooleanVar(value=False)
        self.heatmap_check = ttk.Checkbutton(box, text="Show heatmap on the image", variable=self.heatmap_var,
                                             command=self.refresh_image, state="disabled")
        self.heatmap_check.grid(row=0, column=0, columnspan=3, sticky="w")
        ttk.Label(box, text="Evidence for").grid(row=1, column=0, sticky="w", pady=(6, 0))
        self.class_var = tk.StringVar()
        self.class_box = ttk.Combobox(box, textvariable=self.class_var, state="disabled", width=20)
        self.class_box.grid(row=1, column=1, columnspan=2, sticky="ew", padx=(8, 0), pady=(6, 0))
        self.class_box.bind("<<ComboboxSelected>>", lambda _e: self._class_chosen())
        ttk.Label(box, text="Opacity").grid(row=2, column=0, sticky="w", pady=(6, 0))
        self.opacity_var = tk.DoubleVar(value=0.45)
        self.opacity_scale = ttk.Scale(box, from_=0.1, to=0.9, variable=self.opacity_var,
                                       command=lambda _v: self._opacity_moved())
        self.opacity_scale.grid(row=2, column=1, sticky="ew", padx=(8, 0), pady=(6, 0))
        self.opacity_text = ttk.Label(box, text="45%", width=4, anchor="e")
        self.opacity_text.grid(row=2, column=2, sticky="e", pady=(6, 0))
        self.heatmap_note = ttk.Label(box, text="Warm colours: regions that raised the score.",
                                      foreground="#555555", wraplength=SIDE_WIDTH - 50, justify="left")
        self.heatmap_note.grid(row=3, column=0, columnspan=3, sticky="w", pady=(6, 0))

    # actions
    def browse(self) -> None:
        if self._refuse_if_busy():
            return
        path = dialogs.ask_image(self.winfo_toplevel())
        if path is not None:
            self.open_image(path)

    def open_image(self, path: str | Path) -> bool:
        """Analyse `path` on the worker; False (with a message) when still busy with another."""
        if self._refuse_if_busy():
            return False
        path = Path(path)
        self.busy_path = path
        self.browse_button.state(["disabled"])
        self.file_label.configure(text=str(path))
        self.result_var.set("Waiting for the model to load…" if not self.app.model_ready else "Analysing…")
        self.app.set_status(f"Analysing {path.name}…")
        self.app.worker.submit("analyse", analyse_job, self.app.classifier, path, request=self.requests.new(),
                               on_progress=self._show_prediction, on_done=self._add_heatmap,
                               on_error=self._analysis_failed, on_end=self._analysis_ended)
        return True

    def _refuse_if_busy(self) -> bool:
        if self.busy_path is None:
            return False
        self.app.set_status(f"Still analysing {self.busy_path.name}; please wait for it to finish.")
        self.bell()
        return True

    def export_report(self) -> None:
        if self.prediction is None or self.picture is None:
            dialogs.show_info(self.winfo_toplevel(), "Export report",
                              "Open an image first: there is nothing to report yet.")
            return
        if self._refuse_if_busy():
            return
        path = dialogs.ask_report_path(self.winfo_toplevel(), self.prediction.file)
        if path is None:
            return
        if path.suffix.lower() not in report.REPORT_SUFFIXES:
            path = path.with_suffix(".pdf")
        # The report shows the heatmap of the class chosen under "Evidence for", as on screen.
        chosen = self._class_from_display(self.class_var.get()) or self.prediction.label
        if chosen not in self.heatmaps:
            chosen = self.prediction.label
        heat = self.heatmaps.get(chosen)
        self.app.set_status(f"Writing {path.name}…")
        self.app.worker.submit("report", report_job, self.app.classifier, path, self.prediction,
                               self.picture, heat, float(self.opacity_var.get()), chosen,
                               on_done=lambda saved: self.app.set_status(f"Report saved to {saved}"),
                               on_error=self._failed)

    def _class_chosen(self) -> None:
        name = self._class_from_display(self.class_var.get())
        if self.prediction is None or name is None:
            return
        self.heatmap_var.set(True)
        if name in self.heatmaps:
            self.refresh_image()
            return
        self._heatmap_status = f"Computing the heatmap for {report.display_name(name)}…"
        self.app.set_status(self._heatmap_status)
        self.app.worker.submit("heatmap", heatmap_job, self.app.classifier, self.prediction, name,
                               request=self.requests.current(), on_done=self._add_heatmap, on_error=self._failed)

    def _class_from_display(self, text: str) -> str | None:
        if self.prediction is None:
            return None
        for name in self.prediction.probabilities:
            if report.display_name(name) == text:
                return name
        return None

    def _opacity_moved(self) -> None:
        self.opacity_text.configure(text=f"{self.opacity_var.get():.0%}")
        if self.heatmap_var.get():
            self.refresh_image()

    # results from the worker (Tk thread)
    def _analysis_ended(self) -> None:
        self.busy_path = None
        self.browse_button.state(["!disabled"])

    def _analysis_failed(self, message: str) -> None:
        # The previous result (if any) stays; the failed file is named in the dialog.
        if self.prediction is not None:
            self.result_var.set(report.result_text(self.prediction))
            self.file_label.configure(text=self.prediction.file)
        else:
            self.result_var.set("No result yet.")
            self.file_label.configure(text="No image open")
        self.app.set_status("Could not analyse the image.")
        dialogs.show_error(self.app.root, "Cannot analyse the image", message)

    def _failed(self, message: str) -> None:
        dialogs.show_error(self.app.root, "Retina Desktop", message)

    def _show_prediction(self, analysis: Analysis) -> None:
        prediction = analysis.prediction
        self.prediction, self.picture, self.spec = prediction, analysis.picture, analysis.spec
        self.heatmaps = {}
        self._placed_for = None
        self.file_label.configure(text=prediction.file)
        self.winfo_toplevel().title(f"Retina Desktop: {Path(prediction.file).name}")
        # Every word comes from records.Answer, as in the CLI, the CSV and the report.
        answer = prediction.answer()
        self.result_var.set(answer.headline())
        self._show_text(self.explanation_label, self.explanation_var, answer.explanation())
        self._show_text(self.warning_label, self.warning_var, answer.warning())
        self._show_hint(answer)
        self.chart.show(prediction.probabilities, prediction.label, operating_point=prediction.operating_point,
                        greyed=answer.not_judged)
        names = [report.display_name(n) for n in prediction.probabilities]
        self.class_box.configure(values=names, state="readonly")
        self.class_var.set(report.display_name(prediction.label))
        self.export_button.state(["!disabled"])
        self.heatmap_note.configure(text="Computing the heatmap…")
        self.refresh_image()
        self.app.set_status(f"Analysed {Path(prediction.file).name}")

    @staticmethod
    def _show_text(label: ttk.Label, variable: tk.StringVar, text: str) -> None:
        variable.set(text)
        if text:
            label.grid()
        else:
            label.grid_remove()

    def _show_hint(self, answer) -> None:
        """Name the model that reads this kind of image, with a button to open it."""
        hint = answer.hint()
        self.suggested_model = None
        if not hint:
            self.hint.grid_remove()
            return
        if answer.suggested_model:
            path = Path(answer.suggested_model)
            self.suggested_model = path if path.is_absolute() else bundle_root() / path
            hint += " (File > Open model)"
            kind = {"oct": "OCT", "fundus": "fundus"}.get(answer.looks_like, answer.looks_like)
            self.hint_button.configure(text=f"Open the {kind} model")
            self.hint_button.grid()
        else:
            self.hint_button.grid_remove()
        self.hint_var.set(hint + ".")
        self.hint.grid()

    def _open_suggested(self) -> None:
        if self.suggested_model is not None:
            self.app.open_model(self.suggested_model)

    def _add_heatmap(self, heat: Heatmap) -> None:
        if self._heatmap_status:  # the "Computing…" message is stale once the heatmap is here
            done = "Heatmap not available" if heat.values is None else "Heatmap"
            self.app.set_status_if(self._heatmap_status, f"{done} for {report.display_name(heat.class_name)}.")
            self._heatmap_status = ""
        if heat.values is None:
            self.heatmap_note.configure(text=heat.problem)
            self.heatmap_check.state(["disabled"])
            self.heatmap_var.set(False)
            self.refresh_image()
            return
        self.heatmaps[heat.class_name] = heat.values
        self.heatmap_check.state(["!disabled"])
        if float(heat.values.max()) <= 0:
            note = f"No region raised the score for {report.display_name(heat.class_name)}."
        else:
            note = "Warm colours: regions that raised the score for the chosen class. Not a lesion map."
        self.heatmap_note.configure(text=note)
        self.refresh_image()

    def refresh_image(self) -> None:
        """Redraw the panel: the picture, with the heatmap when the toggle is on."""
        if self.picture is None:
            self.panel.show(None)
            return
        name = self._class_from_display(self.class_var.get()) or (self.prediction.label if self.prediction else "")
        values = self.heatmaps.get(name)
        if not self.heatmap_var.get() or values is None or self.spec is None:
            self.panel.show(self.picture)
            return
        key = (name, id(values))
        placed = self._placed
        if self._placed_for != key or placed is None:
            placed = pictures.place_heatmap(values, self.picture.size, self.spec,
                                            self.prediction.field_of_view if self.prediction else None)
            self._placed, self._placed_for = placed, key
        blended = pictures.overlay(np.asarray(self.picture), placed, float(self.opacity_var.get()))
        self.panel.show(Image.fromarray(blended))

    def clear(self) -> None:
        """Forget the result (after switching models). Tk thread only."""
        self.requests.drop_all()
        self.prediction = self.picture = self.spec = None
        self.heatmaps = {}
        self.result_var.set("No result yet.")
        self.warning_label.grid_remove()
        self.explanation_label.grid_remove()
        self.hint.grid_remove()
        self.file_label.configure(text="No image open")
        self.chart.show({})
        self.heatmap_var.set(False)
        self.heatmap_check.state(["disabled"])
        self.class_box.configure(values=[], state="disabled")
        self.class_var.set("")
        self.export_button.state(["disabled"])
        self.panel.show(None)
