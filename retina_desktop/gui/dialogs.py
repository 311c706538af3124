"""Every dialog the application opens: file choosers, messages, and the About box.

Kept in one module so that tests can patch `tkinter.filedialog` / `tkinter.messagebox` and so
that file types are defined once. Call these on the Tk thread only.
"""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog, messagebox, ttk

from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.services.pictures import IMAGE_EXTENSIONS
from retina_desktop.services.report import NOTICE, display_name, metrics_text
from retina_desktop.services.synthetic_samples import default_export_folder, export_conflicts, export_images


def _patterns(extensions) -> str:
    # Tk matches patterns case-sensitively on Linux: offer both spellings.
    return " ".join(f"*{e} *{e.upper()}" for e in extensions)


IMAGE_TYPES = [
    ("Images and DICOM", _patterns(IMAGE_EXTENSIONS)),
    ("DICOM", _patterns((".dcm", ".dicom"))),
    ("All files", "*"),
]
MODEL_TYPES = [("Keras models", "*.h5 *.keras *.H5"), ("All files", "*")]
GENERATOR_TYPES = [("Keras generator", "*.keras"), ("All files", "*")]
LABEL_TYPES = [("Labels", "*.txt"), ("All files", "*")]
REPORT_TYPES = [("PDF report", "*.pdf"), ("PNG image", "*.png")]
CSV_TYPES = [("CSV table", "*.csv")]


def _chosen(value) -> Path | None:
    # Tk returns "" or () when the user cancels.
    return Path(value) if value else None


def ask_image(parent) -> Path | None:
    return _chosen(filedialog.askopenfilename(parent=parent, title="Open a retinal image", filetypes=IMAGE_TYPES))


def ask_model(parent) -> Path | None:
    return _chosen(filedialog.askopenfilename(parent=parent, title="Open a Keras model", filetypes=MODEL_TYPES))


def ask_generator(parent, title: str = "Open a generator") -> Path | None:
    return _chosen(filedialog.askopenfilename(parent=parent, title=title, filetypes=GENERATOR_TYPES))


def export_confirmed(parent, images, folder: Path, generator_path) -> list[Path] | None:
    """`synthesis.export_images`, asking first when it would replace files; None if declined."""
    existing = export_conflicts(images, folder)
    if existing:
        shown = ", ".join(p.name for p in existing[:5]) + (" …" if len(existing) > 5 else "")
        question = f'{len(existing)} file(s) already exist in "{folder}": {shown}\n\nReplace them?'
        if not messagebox.askyesno("Replace files?", question, parent=parent):
            return None
    return export_images(images, folder, generator_path, overwrite=bool(existing))


def ask_labels(parent, model: Path) -> Path | None:
    return _chosen(
        filedialog.askopenfilename(
            parent=parent, title=f"Labels for {model.name} (labels.txt)", filetypes=LABEL_TYPES,
            initialdir=str(model.parent),
        )
    )


def ask_folder(parent) -> Path | None:
    return _chosen(filedialog.askdirectory(parent=parent, title="Choose a folder of images", mustexist=True))


def ask_export_folder(parent, initial: Path | None = None) -> Path | None:
    """Where to export synthetic images: starts in `initial` or the synthetic images' own folder
    (created so the dialog can open in it), never in a folder of patient images; a name typed
    that does not exist yet is a new folder (`mustexist=False`; the export creates it)."""
    start = initial or default_export_folder()
    try:
        start.mkdir(parents=True, exist_ok=True)
    except OSError:
        start = Path.home()
    return _chosen(filedialog.askdirectory(
        parent=parent, title="Export synthetic images to a folder (type a new name to create one)",
        initialdir=str(start), mustexist=False,
    ))


def ask_report_path(parent, image_file: str) -> Path | None:
    stem = Path(image_file).stem or "report"
    return _chosen(
        filedialog.asksaveasfilename(
            parent=parent, title="Export report", filetypes=REPORT_TYPES, defaultextension=".pdf",
            initialfile=f"{stem}-report.pdf",
        )
    )


def ask_csv_path(parent, folder: Path | None) -> Path | None:
    name = f"{folder.name}-results.csv" if folder else "results.csv"
    return _chosen(
        filedialog.asksaveasfilename(
            parent=parent, title="Export results as CSV", filetypes=CSV_TYPES, defaultextension=".csv",
            initialfile=name,
        )
    )


def show_error(parent, title: str, message: str) -> None:
    messagebox.showerror(title, message, parent=parent)


def show_info(parent, title: str, message: str) -> None:
    messagebox.showinfo(title, message, parent=parent)


def about_text(metadata: ModelMetadata | None, model_path: str | None) -> str:
    """What the About box says: the model's provenance and the notice."""
    from retina_desktop import __version__

    lines = [f"Retina Desktop {__version__}", "", NOTICE, ""]
    if metadata is None:
        lines.append("No model is loaded yet.")
        return "\n".join(lines)
    lines += [
        f"Model: {metadata.name} (model version {metadata.version})",
        f"File: {model_path}",
        f"Modality: {metadata.modality}",
        f"Classes: {', '.join(display_name(c) for c in metadata.classes)}",
        f"Decision: {metadata.decision_text()}",
        f"Input: {metadata.input.width}x{metadata.input.height}, {metadata.input.fit}",
        metrics_text(metadata),
    ]
    provenance = metadata.provenance or {}
    for key in ("trained_at", "data", "command", "note"):
        if provenance.get(key):
            lines.append(f"{key.replace('_', ' ').capitalize()}: {provenance[key]}")
    return "\n".join(lines)


class AboutDialog(tk.Toplevel):
    """A small modal window with the About text, selectable so it can be copied."""

    def __init__(self, parent, text: str) -> None:
        super().__init__(parent)
        self.title("About Retina Desktop")
        self.transient(parent)
        self.resizable(True, True)
        frame = ttk.Frame(self, padding=12)
        frame.pack(fill="both", expand=True)
        lines = text.count("\n") + 1
        box = tk.Text(frame, width=72, height=min(max(lines, 8), 22), wrap="word", relief="flat",
                      background=ttk.Style(self).lookup("TFrame", "background") or "#ececec",
                      font="TkDefaultFont")
        box.insert("1.0", text)
        box.configure(state="disabled")
        box.pack(fill="both", expand=True)
        ttk.Button(frame, text="Close", command=self.destroy).pack(anchor="e", pady=(8, 0))
        self.bind("<Escape>", lambda _e: self.destroy())
