"""The main window: menu, notebook (Analyse, Batch, Augment), notice, status bar, and the
message loop between the Tk thread and the worker threads.

The window is built at once; the model loads on a worker thread started by `after(1, ...)`
once Tk is running. Every job is submitted with its callbacks (worker.py); the workers put
their deliveries on one queue, and `_drain`, rescheduled every 50 ms, runs them on the Tk
thread. The tabs use this window through `TabHost` (host.py). Widgets are touched on the Tk
thread only.
"""

from __future__ import annotations

import queue
import sys
import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from tkinter import font as tkfont
from tkinter import ttk

from PIL import Image

from retina_desktop.core.errors import UserError
from retina_desktop.core.logs import log_unexpected
from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.core.settings import Settings, save_settings, settings_path
from retina_desktop.gui import dialogs
from retina_desktop.gui.analyse_tab import AnalyseTab
from retina_desktop.gui.augment_tab import AugmentTab
from retina_desktop.gui.batch_tab import BatchTab
from retina_desktop.gui.dnd import enable_file_drop
from retina_desktop.gui.service_api import ClassifierService
from retina_desktop.gui.settings_dialog import SettingsDialog
from retina_desktop.gui.status_bar import StatusBar
from retina_desktop.gui.worker import Worker
from retina_desktop.services.classify import needs_labels
from retina_desktop.services.report import NOTICE, display_name

POLL_MS = 50


# ---- jobs: these run on a worker thread ---------------------------------------------------


def import_chart_job() -> None:
    """Import matplotlib's Tk backend ahead, so that creating the chart does not stall Tk."""
    import matplotlib.backends.backend_tkagg  # noqa: F401
    import matplotlib.figure  # noqa: F401


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded on the worker: its classifier, its metadata, and why a compiled copy found
    for it was refused ("" when none was)."""

    classifier: ClassifierService
    metadata: ModelMetadata
    compiled_problem: str = ""


def load_model_job(classifier: ClassifierService) -> LoadedModel:
    """Load (TensorFlow and) the model."""
    bundle = classifier.bundle()
    return LoadedModel(classifier, bundle.metadata, bundle.compiled_problem)


# Seconds `quit` waits for each worker's current job after the window closes.
QUIT_WAIT_S = 15.0


# ---- the window: Tk thread only -----------------------------------------------------------


class MainWindow:
    """The application window; the tabs' `TabHost`."""

    def __init__(
        self,
        root: tk.Tk,
        classifier: ClassifierService,
        *,
        image: str | Path | None = None,
        classifier_factory: Callable[..., ClassifierService] | None = None,
        trust_model: bool = False,
    ) -> None:
        self.root = root
        self.classifier = classifier
        self.classifier_factory = classifier_factory
        self.trust_model = trust_model
        self.metadata: ModelMetadata | None = None
        self.model_ready = False
        self._opening_model: Path | None = None
        self._initial_image = Path(image) if image else None
        self.messages: queue.Queue = queue.Queue()
        # A job submitted without its own error callback is reported in a plain dialog.
        self.worker = Worker(self.messages, "retina-worker", self._job_failed)
        self.batch_worker = Worker(self.messages, "retina-batch", self._job_failed)
        self.augment_worker = Worker(self.messages, "retina-augment", self._job_failed)
        self._closed = False

        root.title("Retina Desktop")
        root.report_callback_exception = self.report_exception
        self._style()
        self._geometry()
        self._body()
        self._menu()
        self._shortcuts()
        root.protocol("WM_DELETE_WINDOW", self.quit)
        self.drop_enabled = enable_file_drop(
            root, [self.analyse.panel.canvas, self.batch.tree], self._dropped
        )
        self._poll_id = root.after(POLL_MS, self._drain)
        root.after(1, self._start)

    # construction
    def _style(self) -> None:
        style = ttk.Style(self.root)
        if sys.platform.startswith("linux") and "clam" in style.theme_names():
            style.theme_use("clam")  # the X11 default theme looks dated; clam is crisp and flat
        base = tkfont.nametofont("TkDefaultFont")
        size = max(abs(int(base.cget("size"))), 10)
        base.configure(size=size)
        for name in ("TkTextFont", "TkMenuFont", "TkHeadingFont"):
            tkfont.nametofont(name).configure(size=size)
        family = base.cget("family")
        style.configure("Result.TLabel", font=(family, size + 4, "bold"), foreground="#12324a")
        style.configure("Heading.TLabel", font=(family, size + 4, "bold"))
        style.configure("Warning.TLabel", background="#fff3cd", foreground="#5c4400")
        style.configure("Hint.TFrame", background="#e3eef7")
        style.configure("Hint.TLabel", background="#e3eef7", foreground="#12324a")
        style.configure("Notice.TLabel", foreground="#7a1d1d", font=(family, size, "bold"))
        style.configure("Status.TLabel", foreground="#333333")
        style.configure("Accent.TButton", font=(family, size, "bold"))
        style.configure("Treeview", rowheight=int(size * 2.3))
        style.configure("TNotebook.Tab", padding=(14, 5))
        # clam draws the filled part of a progress bar lighter than its trough: a full bar looks empty.
        accent = "#2f6f9f"
        style.configure("TProgressbar", background=accent, lightcolor=accent, darkcolor=accent,
                        troughcolor="#f4f4f2", bordercolor="#a8a8a0")

    def _geometry(self) -> None:
        width = min(1200, self.root.winfo_screenwidth() - 40)
        height = min(780, self.root.winfo_screenheight() - 70)
        self.root.geometry(f"{width}x{height}")
        self.root.minsize(min(900, width), min(600, height))

    def _menu(self) -> None:
        self.analyse_heatmap_var = self.analyse.heatmap_var
        bar = tk.Menu(self.root)
        file_menu = tk.Menu(bar, tearoff=False)
        file_menu.add_command(label="Open image…", accelerator="Ctrl+O", command=self.open_image)
        file_menu.add_command(label="Classify folder…", accelerator="Ctrl+B", command=self.classify_folder)
        file_menu.add_command(label="Open model…", command=self.open_model)
        file_menu.add_command(label="Export report…", accelerator="Ctrl+E", command=self.export_report)
        file_menu.add_command(label="Settings…", command=self.open_settings)
        file_menu.add_separator()
        file_menu.add_command(label="Quit", accelerator="Ctrl+Q", command=self.quit)
        bar.add_cascade(label="File", menu=file_menu, underline=0)
        view_menu = tk.Menu(bar, tearoff=False)
        view_menu.add_checkbutton(label="Show heatmap", accelerator="Ctrl+H", variable=self.analyse_heatmap_var,
                                  command=self._heatmap_toggled)
        bar.add_cascade(label="View", menu=view_menu, underline=0)
        help_menu = tk.Menu(bar, tearoff=False)
        help_menu.add_command(label="About Retina Desktop", command=self.about)
        bar.add_cascade(label="Help", menu=help_menu, underline=0)
        self.root.configure(menu=bar)
        self.menu = bar

    def _body(self) -> None:
        outer = ttk.Frame(self.root)
        outer.pack(fill="both", expand=True)
        self.notebook = ttk.Notebook(outer)
        self.analyse = AnalyseTab(self.notebook, self)
        self.batch = BatchTab(self.notebook, self)
        self.augment = AugmentTab(self.notebook, self)
        self.notebook.add(self.analyse, text="Analyse")
        self.notebook.add(self.batch, text="Batch")
        self.notebook.add(self.augment, text="Augment")

        # The status bar and the notice are packed at the bottom before the notebook is given the
        # rest: a small window then squeezes the notebook, never the not-a-medical-device notice.
        self.status_var = tk.StringVar(value="Starting…")
        self.model_var = tk.StringVar(value="Loading model…")
        self.status_bar = StatusBar(outer, self.status_var, self.model_var)
        self.status_bar.pack(side="bottom", fill="x")
        ttk.Separator(outer).pack(side="bottom", fill="x")
        self.notice = ttk.Label(outer, text=NOTICE, style="Notice.TLabel", anchor="w")
        self.notice.pack(side="bottom", fill="x", padx=12, pady=(6, 2))
        self.notebook.pack(side="top", fill="both", expand=True, padx=8, pady=(8, 0))

    def _shortcuts(self) -> None:
        keys = (("o", self.open_image), ("e", self.export_report), ("q", self.quit),
                ("b", self.classify_folder), ("h", self.toggle_heatmap))
        for key, action in keys:
            for sequence in (f"<Control-{key}>", f"<Control-{key.upper()}>"):
                self.root.bind_all(sequence, self._shortcut(action))

    @staticmethod
    def _shortcut(action: Callable[[], None]) -> Callable[[tk.Event], str]:
        """A key binding that runs `action` and stops Tk's own handling of the key."""

        def run(_event: tk.Event) -> str:
            action()
            return "break"

        return run

    def _start(self) -> None:
        """Runs once Tk is up: the slow imports and the model load go to the worker."""
        self.worker.submit("chart", import_chart_job, on_done=lambda _: self.analyse.chart.attach())
        self._loading(f"Loading model {Path(self.classifier.model_path).name}…")
        self.worker.submit("model", load_model_job, self.classifier, on_done=self._model_loaded,
                           on_error=self._model_failed, on_end=self._loaded)
        if self._initial_image is not None:
            self.analyse.open_image(self._initial_image)

    # status
    def set_status(self, text: str) -> None:
        """Show `text` in the status bar. Tk thread only."""
        self.status_var.set(text)

    def set_status_if(self, current: str, text: str) -> None:
        """Replace the status message with `text` only while it still reads `current` (so a
        finished step clears its own "…" message without hiding a newer one). Tk thread only."""
        if self.status_var.get() == current:
            self.status_var.set(text)

    def _loading(self, text: str) -> None:
        self.model_var.set("Loading model…")
        self.set_status(text)
        self.status_bar.busy(True)

    def _loaded(self) -> None:
        self.status_bar.busy(False)

    def _model_text(self, metadata: ModelMetadata) -> str:
        classes = ", ".join(display_name(c) for c in metadata.classes)
        text = f"Model: {metadata.name} · model version {metadata.version} · {metadata.modality} · {classes}"
        point = metadata.operating_point()
        if point is not None:
            kind = "referral threshold" if point.referral else "threshold"
            text += f" · {kind} {point.threshold:.2f} for {display_name(point.positive_class)}"
        return text

    # menu actions
    def open_image(self) -> None:
        self.notebook.select(self.analyse)
        self.analyse.browse()

    def classify_folder(self) -> None:
        self.notebook.select(self.batch)
        self.batch.choose_folder()

    def toggle_heatmap(self) -> None:
        if "disabled" in self.analyse.heatmap_check.state():
            self.set_status("No heatmap to show yet.")
            return
        self.notebook.select(self.analyse)
        self.analyse.heatmap_var.set(not self.analyse.heatmap_var.get())
        self._heatmap_toggled()

    def _heatmap_toggled(self) -> None:
        if "disabled" in self.analyse.heatmap_check.state():
            self.analyse.heatmap_var.set(False)
        self.analyse.refresh_image()

    def open_in_analyse(self, path: Path) -> None:
        self.notebook.select(self.analyse)
        self.analyse.open_image(path)

    def export_report(self) -> None:
        self.notebook.select(self.analyse)
        self.analyse.export_report()

    def analysed_picture(self) -> tuple[Image.Image, str] | None:
        """The picture open in the Analyse tab and its file name; None when there is none."""
        picture, prediction = self.analyse.picture, self.analyse.prediction
        if picture is None or prediction is None:
            return None
        return picture, Path(prediction.file).name

    def open_model(self, path: str | Path | None = None) -> None:
        """Switch to the model at `path` (asked for when None), loading it on the worker."""
        if self._opening_model is not None:
            self.set_status(f"Still loading {self._opening_model.name}; please wait.")
            return
        path = Path(path) if path is not None else dialogs.ask_model(self.root)
        if path is None:
            return
        labels = None
        if needs_labels(path):
            labels = dialogs.ask_labels(self.root, path)
            if labels is None:
                return
        factory: Callable[..., ClassifierService] = self.classifier_factory or type(self.classifier)
        candidate = factory(path, labels, trust_model=self.trust_model)
        self._opening_model = path
        self._loading(f"Loading model {path.name}…")
        self.worker.submit("open model", load_model_job, candidate,
                           on_done=lambda loaded: self._model_loaded(loaded, switched=True),
                           on_error=self._model_not_changed, on_end=self._model_opened)

    @property
    def unsure_below(self) -> float:
        return self.classifier.settings.unsure_below

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.root, self.classifier.settings, self.metadata, self.apply_settings)

    def apply_settings(self, settings: Settings) -> None:
        """Save the settings and use them from the next image on. Tk thread only."""
        try:
            save_settings(settings)
        except OSError as err:
            dialogs.show_error(self.root, "Settings not saved", f"Cannot write {settings_path()}: {err}")
        self.classifier.settings = settings
        self.set_status("Settings saved; they apply to the next image analysed.")

    def about(self) -> None:
        path = str(self.classifier.model_path) if self.model_ready else None
        dialogs.AboutDialog(self.root, dialogs.about_text(self.metadata, path))

    def quit(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.batch.cancel()
        for worker in (self.worker, self.batch_worker, self.augment_worker):
            worker.stop()
        try:
            self.root.after_cancel(self._poll_id)
        except tk.TclError:
            pass
        self.root.destroy()
        # The window is gone; let a model load or the current batch image finish rather than
        # end the process under native code (bounded: a stuck job must not hang the exit).
        for worker in (self.worker, self.batch_worker, self.augment_worker):
            worker.join(QUIT_WAIT_S)

    def _dropped(self, paths: list[Path]) -> None:
        first = paths[0]
        if first.is_dir():
            self.notebook.select(self.batch)
            self.batch.run(first)
        else:
            self.open_in_analyse(first)

    # errors
    def report_exception(self, exc_type, value, tb) -> None:
        """Tk's hook for exceptions in callbacks: plain message, or log file + its path."""
        if self._closed:
            return  # e.g. a dialog still open when the window was closed under it
        if isinstance(value, UserError):
            message, title = str(value), "Retina Desktop"
        else:
            path = log_unexpected("Unexpected error in the window", value)
            message, title = f"Unexpected error, see {path}", "Unexpected error"
        try:
            dialogs.show_error(self.root, title, message)
        except tk.TclError:  # the window is going away
            pass

    # the message loop
    def _drain(self) -> None:
        try:
            for _ in range(500):  # bounded, so a flood of batch rows cannot starve Tk
                self.messages.get_nowait().deliver()
        except queue.Empty:
            pass
        finally:
            if not self._closed:
                self._poll_id = self.root.after(POLL_MS, self._drain)

    # the model's jobs
    def _model_opened(self) -> None:
        self._opening_model = None
        self._loaded()

    def _model_loaded(self, loaded: LoadedModel, *, switched: bool = False) -> None:
        classifier, metadata, compiled_problem = loaded.classifier, loaded.metadata, loaded.compiled_problem
        previous = self.analyse.prediction
        self.classifier = classifier
        self.metadata = metadata
        self.model_ready = True
        self.model_var.set(self._model_text(metadata))
        self.set_status("Ready. Open an image (Ctrl+O) or choose a folder in the Batch tab.")
        self.augment.model_changed()
        if switched:
            self.analyse.clear()
            self.set_status(f"Model {metadata.name} loaded.")
            if previous is not None and self.analyse.busy_path is None:
                self.analyse.open_image(previous.file)  # the same image, judged by the new model
        if compiled_problem:
            # Shown once, in place of "Ready": the log alone never reaches a clinic PC's user,
            # and a changed .tflite may mean a tampered or damaged install.
            self.set_status(f"{compiled_problem}; the model file is used instead.")

    def _model_failed(self, message: str) -> None:
        self.model_var.set("No model loaded")
        self.set_status("The model could not be loaded; use File > Open model.")
        dialogs.show_error(self.root, "Model not loaded", message)

    def _model_not_changed(self, message: str) -> None:
        kept = f"\n\nStill using {self.metadata.name}." if self.model_ready and self.metadata else ""
        if self.model_ready and self.metadata:
            self.model_var.set(self._model_text(self.metadata))
        else:
            self.model_var.set("No model loaded")
        self.set_status("The model was not changed.")
        dialogs.show_error(self.root, "Cannot open the model", message + kept)

    def _job_failed(self, message: str) -> None:
        dialogs.show_error(self.root, "Retina Desktop", message)
