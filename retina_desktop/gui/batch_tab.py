"""The Batch tab: classify every image in a folder, show the results in a sortable table.

The run is a job on the app's batch worker (so the Analyse tab stays usable meanwhile); the
number of images and then each file's row come back as its progress. Cancel sets an event the
job checks between files. A file that cannot be read becomes a row with its error; it never
stops the run.
"""

from __future__ import annotations

import functools
import threading
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path
from tkinter import ttk
from typing import Literal

from retina_desktop.gui import dialogs
from retina_desktop.gui.host import TabHost
from retina_desktop.gui.service_api import ClassifierService
from retina_desktop.gui.worker import Requests
from retina_desktop.services.batch import BatchRow, classify_folder, write_csv
from retina_desktop.services.pictures import list_images

# key, heading, width, anchor
COLUMNS: tuple[tuple[str, str, int, Literal["w", "e"]], ...] = (
    ("file", "File", 280, "w"),
    ("label", "Model output", 265, "w"),
    ("confidence", "Confidence", 190, "e"),
    ("error", "Problem", 300, "w"),
)


@dataclass(frozen=True)
class BatchStarted:
    """The first progress of a run: how many images the folder holds."""

    total: int


@dataclass(frozen=True)
class BatchSummary:
    total: int
    done: int
    cancelled: bool


# ---- jobs: these run on the batch worker thread -----------------------------------------


def batch_job(classifier: ClassifierService, folder: Path, cancel: threading.Event, progress) -> BatchSummary:
    """Classify `folder`, reporting `BatchStarted` and then each file's `BatchRow` (`progress`)."""
    classifier.bundle()  # a bad model fails once, before any file
    total = len(list_images(folder))
    progress(BatchStarted(total))
    done = 0
    for row in classify_folder(folder, classifier.predict_files, cancel):
        done += 1
        progress(row)
    return BatchSummary(total, done, cancel.is_set() and done < total)


def csv_job(path: Path, rows: list[BatchRow], classes: list[str]) -> Path:
    write_csv(path, rows, classes)
    return path


# ---- the tab: Tk thread only -------------------------------------------------------------


class BatchTab(ttk.Frame):
    def __init__(self, parent, app: TabHost) -> None:
        super().__init__(parent, padding=(10, 8))
        self.app = app
        self.folder: Path | None = None
        self.rows: list[BatchRow] = []
        self.running = False
        self._cancel = threading.Event()
        self.requests = Requests()  # one per run
        self._total = 0
        self._sort: tuple[str, bool] = ("file", False)
        self._items: dict[str, BatchRow] = {}
        self._build()

    def _build(self) -> None:
        self.columnconfigure(0, weight=1)
        self.rowconfigure(2, weight=1)
        bar = ttk.Frame(self)
        bar.grid(row=0, column=0, sticky="ew")
        self.folder_button = ttk.Button(bar, text="Choose folder…", command=self.choose_folder, style="Accent.TButton")
        self.folder_button.pack(side="left")
        self.cancel_button = ttk.Button(bar, text="Cancel", command=self.cancel, state="disabled")
        self.cancel_button.pack(side="left", padx=(8, 0))
        self.export_button = ttk.Button(bar, text="Export CSV…", command=self.export_csv, state="disabled")
        self.export_button.pack(side="left", padx=(8, 0))
        self.folder_label = ttk.Label(bar, text="No folder chosen", foreground="#444444")
        self.folder_label.pack(side="left", padx=(14, 0), fill="x", expand=True)

        progress = ttk.Frame(self)
        progress.grid(row=1, column=0, sticky="ew", pady=(8, 8))
        progress.columnconfigure(0, weight=1)
        self.progress = ttk.Progressbar(progress, mode="determinate", maximum=1)
        self.progress.grid(row=0, column=0, sticky="ew")
        self.summary_var = tk.StringVar(value="Choose a folder: every image in it (and its sub-folders) is classified.")
        ttk.Label(progress, textvariable=self.summary_var).grid(row=1, column=0, sticky="w", pady=(4, 0))

        table = ttk.Frame(self)
        table.grid(row=2, column=0, sticky="nsew")
        table.columnconfigure(0, weight=1)
        table.rowconfigure(0, weight=1)
        self.tree = ttk.Treeview(table, columns=[c[0] for c in COLUMNS], show="headings", selectmode="browse")
        for key, title, width, anchor in COLUMNS:
            self.tree.heading(key, text=title, command=functools.partial(self.sort_by, key))
            self.tree.column(key, width=width, minwidth=60, anchor=anchor, stretch=key in ("file", "error"))
        self.tree.tag_configure("error", foreground="#a01818")
        self.tree.tag_configure("unsure", foreground="#8a5a00")
        scroll = ttk.Scrollbar(table, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.tree.bind("<Double-1>", self._double_click)
        self.tree.bind("<Return>", self._double_click)
        self.tree.bind("<<TreeviewSelect>>", self._selected)
        ttk.Label(self, text="Double-click a row to open it in the Analyse tab. Click a column title to sort.",
                  foreground="#555555").grid(row=3, column=0, sticky="w", pady=(6, 0))
        self._update_headings()

    # actions
    def choose_folder(self) -> None:
        if self._refuse_if_running():
            return
        folder = dialogs.ask_folder(self.winfo_toplevel())
        if folder is not None:
            self.run(folder)

    def run(self, folder: str | Path) -> bool:
        """Start classifying `folder` on the batch worker; False when a run is going on."""
        if self._refuse_if_running():
            return False
        self.folder = Path(folder)
        self._cancel = threading.Event()
        self.rows = []
        self._items = {}
        self.tree.delete(*self.tree.get_children())
        self.running = True
        self.folder_button.state(["disabled"])
        self.cancel_button.state(["!disabled"])
        self.export_button.state(["disabled"])
        self.progress.configure(value=0, maximum=1)
        self.folder_label.configure(text=str(self.folder))
        self.summary_var.set("Waiting for the model…" if not self.app.model_ready else "Listing images…")
        self.app.batch_worker.submit("batch", batch_job, self.app.classifier, self.folder, self._cancel,
                                     request=self.requests.new(), on_progress=self._progress, on_done=self._finish,
                                     on_error=self._failed, on_end=self._run_ended)
        return True

    def _refuse_if_running(self) -> bool:
        if not self.running:
            return False
        self.app.set_status("A batch is running: wait for it to finish or press Cancel.")
        self.bell()
        return True

    def cancel(self) -> None:
        """Stop the run after the images being classified (the Cancel button)."""
        if self.running:
            self._cancel.set()
            self.cancel_button.state(["disabled"])
            self.summary_var.set("Cancelling after the images being classified…")

    def export_csv(self) -> None:
        if not self.rows:
            dialogs.show_info(self.winfo_toplevel(), "Export CSV", "There are no results to export yet.")
            return
        path = dialogs.ask_csv_path(self.winfo_toplevel(), self.folder)
        if path is None:
            return
        first = next((r.prediction for r in self.rows if r.prediction is not None), None)
        classes = list(first.probabilities) if first else []
        self.app.worker.submit("csv", csv_job, path, list(self.rows), classes,
                               on_done=lambda saved: self.app.set_status(f"Results saved to {saved}"),
                               on_error=self._failed)

    def sort_by(self, key: str) -> None:
        current, descending = self._sort
        self._sort = (key, not descending if key == current else key == "confidence")
        self._refill()

    def _sort_key(self, row: BatchRow):
        key = self._sort[0]
        answer = row.prediction.answer() if row.prediction else None
        if key == "confidence":
            return answer.probability if answer and answer.probability is not None else -1.0
        if key == "label":
            return (answer.label if answer and answer.label else "~", row.file)
        if key == "error":
            return (row.error or "", row.file)
        return row.file.lower()

    def _refill(self) -> None:
        self.tree.delete(*self.tree.get_children())
        self._items = {}
        for row in sorted(self.rows, key=self._sort_key, reverse=self._sort[1]):
            self._insert(row)
        self._update_headings()

    def _update_headings(self) -> None:
        key, descending = self._sort
        for column, title, *_ in COLUMNS:
            arrow = (" ▼" if descending else " ▲") if column == key else ""
            self.tree.heading(column, text=title + arrow)

    def _display_file(self, row: BatchRow) -> str:
        path = Path(row.file)
        if self.folder is not None:
            try:
                return str(path.relative_to(self.folder))
            except ValueError:
                pass
        return str(path)

    def _insert(self, row: BatchRow) -> None:
        if row.prediction is None:
            # The File column already names the file; the message need not repeat its path.
            error = row.error
            for prefix in (f'"{row.file}" is ', f'"{row.file}": ', f'"{row.file}" '):
                if error.startswith(prefix):
                    error = error[len(prefix):]
                    break
            values = (self._display_file(row), "", "", error[:1].upper() + error[1:])
            tags: tuple[str, ...] = ("error",)
        else:
            # Worded by records.Answer, as in the CLI, the CSV and the Analyse tab.
            answer = row.prediction.answer()
            if answer.not_judged:
                values = (self._display_file(row), "not judged", "", "; ".join(answer.reasons))
            else:
                label = answer.label_text()
                note = "unfamiliar image: output may be unreliable" if answer.unfamiliar else ""
                values = (self._display_file(row), label, answer.short_basis(), note)
            tags = ("unsure",) if answer.unsure or answer.not_judged or answer.unfamiliar else ()
        item = self.tree.insert("", "end", values=values, tags=tags)
        self._items[item] = row

    def _selected(self, _event=None) -> None:
        selection = self.tree.selection()
        row = self._items.get(selection[0]) if selection else None
        if row is not None:
            self.app.set_status(row.error or row.file)

    def _double_click(self, _event=None) -> None:
        selection = self.tree.selection() or (self.tree.focus(),)
        row = self._items.get(selection[0]) if selection and selection[0] else None
        if row is not None:
            self.app.open_in_analyse(Path(row.file))

    # results from the worker (Tk thread)
    def _progress(self, update: BatchStarted | BatchRow) -> None:
        if isinstance(update, BatchStarted):
            self._total = update.total
            self.progress.configure(maximum=max(update.total, 1), value=0)
            self.summary_var.set(f"0 of {update.total} images" if update.total else "No images found in this folder.")
            return
        self.rows.append(update)
        self._insert(update)
        self.progress.configure(value=len(self.rows))
        self.summary_var.set(f"{len(self.rows)} of {self._total} images…")

    def _run_ended(self) -> None:
        if self.running:
            # Ends a run that failed as a whole (the failure itself is shown by `_failed`).
            self._set_idle()
            if not self.rows:
                self.summary_var.set("The batch did not run.")

    def _failed(self, message: str) -> None:
        dialogs.show_error(self.app.root, "Batch", message)

    def _finish(self, summary: BatchSummary) -> None:
        self._refill()
        self.progress.configure(maximum=max(summary.total, 1), value=summary.done if summary.total else 1)
        failed = sum(1 for r in self.rows if not r.ok)
        text = f"{summary.done} of {summary.total} images: {summary.done - failed} classified"
        if failed:
            text += f", {failed} could not be read"
        flagged = sum(1 for r in self.rows if r.prediction is not None and not r.prediction.fit_to_judge)
        if flagged:
            text += f", {flagged} not judged (image checks)"
        if summary.cancelled:
            text += " (cancelled)"
        self.summary_var.set(text + ".")
        self.app.set_status("Batch cancelled." if summary.cancelled else "Batch finished.")
        self._set_idle()

    def _set_idle(self) -> None:
        self.running = False
        self.folder_button.state(["!disabled"])
        self.cancel_button.state(["disabled"])
        if self.rows:
            self.export_button.state(["!disabled"])
