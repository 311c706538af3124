"""The wording of a result, and the report a user exports from the Diagnose tab.

Owns how a prediction is put into words ("Model output: glaucoma (87% confidence)"), when it
counts as unsure, and the one-page report (PDF or PNG): the image, the heatmap, every class's
probability, the model's name, version and test metrics, the date and the notice that this is
model output, not a diagnosis. Drawn on a matplotlib `Figure` (no pyplot state, no GUI), and
saved atomically where the user chose.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from .atomic import atomic_save
from .errors import UserError
from .records import ModelMetadata, Prediction

NOTICE = "Model output, not a diagnosis. Retina Desktop is not a medical device."
# Below this top probability the answer is flagged as unsure.
UNSURE_THRESHOLD = 0.6
REPORT_SUFFIXES = (".pdf", ".png")
_A4_PORTRAIT = (8.27, 11.69)


def display_name(class_name: str) -> str:
    """A class name as people read it: "diabetic_retinopathy" -> "diabetic retinopathy"."""
    return class_name.replace("_", " ").strip()


def result_text(prediction: Prediction) -> str:
    """The headline: the model's answer, or, when the image failed its checks, no answer."""
    if not prediction.fit_to_judge:
        return "Not judged: the image is not fit for this model"
    return f"Model output: {display_name(prediction.label)} ({prediction.confidence:.0%} confidence)"


def is_unsure(prediction: Prediction, threshold: float = UNSURE_THRESHOLD) -> bool:
    return prediction.confidence < threshold or not prediction.fit_to_judge


def unsure_text(prediction: Prediction, threshold: float = UNSURE_THRESHOLD) -> str:
    """The warning shown when the image failed its checks or the model is unsure; else empty."""
    if not prediction.fit_to_judge:
        reasons = "; ".join(prediction.checks.reasons)
        return (
            f"The image checks failed: {reasons}. The probabilities below are shown for reference "
            f"only (model output would be {display_name(prediction.label)}, {prediction.confidence:.0%})."
        )
    if prediction.confidence >= threshold:
        return ""
    return (
        f"The model is unsure: its answer has {prediction.confidence:.0%} confidence "
        f"(below {threshold:.0%}). Treat this output with caution."
    )


def metrics_text(metadata: ModelMetadata | None) -> str:
    """One line of the model's test metrics, or a plain statement that there are none."""
    metrics = (metadata.metrics if metadata else None) or {}
    parts = []
    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("macro_auc", "macro AUC")):
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:.1%}" if key != "macro_auc" else f"{label} {value:.3f}")
    if not parts:
        return "No test metrics recorded for this model."
    n = metrics.get("n")
    return "Test set" + (f" ({n} images)" if n else "") + ": " + ", ".join(parts)


def build_report_figure(
    prediction: Prediction,
    *,
    image: np.ndarray | None = None,
    heatmap: np.ndarray | None = None,
    metadata: ModelMetadata | None = None,
    created: dt.datetime | None = None,
    opacity: float = 0.45,
):
    """The report page as a matplotlib Figure (A4 portrait).

    `image` is the picture to show (default: the image as the model saw it); `heatmap` is
    Grad-CAM over the model's input (see `heatmaps.gradcam`), placed onto `image`.
    """
    from matplotlib.figure import Figure

    from .heatmaps import overlay, place_heatmap

    created = created or dt.datetime.now().astimezone()
    picture = np.asarray(image if image is not None else prediction.processed_image, dtype=np.uint8)
    fig = Figure(figsize=_A4_PORTRAIT, dpi=100)
    grid = fig.add_gridspec(4, 2, height_ratios=[0.16, 0.34, 0.30, 0.20], hspace=0.35, wspace=0.06,
                            left=0.08, right=0.94, top=0.96, bottom=0.04)

    header = fig.add_subplot(grid[0, :])
    header.axis("off")
    header.text(0, 1, "Retina Desktop: model output report", fontsize=16, fontweight="bold", va="top")
    model_line = prediction.model_name or (metadata.name if metadata else "unnamed model")
    if metadata is not None:
        model_line += f", version {metadata.version}, modality {metadata.modality}"
    lines = [
        f"Image: {Path(prediction.file).name}",
        f"Model: {model_line}",
        f"Date: {created.strftime('%Y-%m-%d %H:%M %Z').strip()}",
    ]
    header.text(0, 0.62, "\n".join(lines), fontsize=10, va="top", linespacing=1.6)

    left = fig.add_subplot(grid[1, 0])
    left.imshow(picture)
    left.set_title("Image", fontsize=10)
    left.axis("off")
    right = fig.add_subplot(grid[1, 1])
    if heatmap is not None:
        spec = metadata.input if metadata is not None else None
        placed = place_heatmap(heatmap, (picture.shape[1], picture.shape[0]), spec) if spec else heatmap
        right.imshow(overlay(picture, placed, opacity))
        right.set_title(f"Heatmap (Grad-CAM) for {display_name(prediction.label)}", fontsize=10)
    else:
        right.text(0.5, 0.5, "No heatmap", ha="center", va="center", color="0.4")
        right.set_title("Heatmap", fontsize=10)
    right.axis("off")

    # The class names need their own room on the left of the bars.
    bars = fig.add_subplot(grid[2, :].subgridspec(1, 2, width_ratios=[0.24, 0.76])[0, 1])
    names = [display_name(n) for n in prediction.probabilities]
    values = list(prediction.probabilities.values())
    colours = ["#1f5f8b" if n == prediction.label else "#9bb7cc" for n in prediction.probabilities]
    positions = np.arange(len(names))[::-1]
    bars.barh(positions, values, color=colours)
    bars.set_yticks(positions, names, fontsize=10)
    bars.set_xlim(0, 1)
    bars.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0%", "25%", "50%", "75%", "100%"], fontsize=9)
    bars.set_xlabel("Probability (model output)", fontsize=9)
    for y, value in zip(positions, values):
        bars.text(min(value + 0.01, 0.9), y, f"{value:.0%}", va="center", fontsize=9)
    header.text(0, -0.12, result_text(prediction), fontsize=13, fontweight="bold", va="top")
    bars.set_title("Probability per class", fontsize=10, loc="left")
    for side in ("top", "right"):
        bars.spines[side].set_visible(False)

    footer = fig.add_subplot(grid[3, :])
    footer.axis("off")
    notes = []
    warning = unsure_text(prediction)
    if warning:
        notes.append(warning)
    notes.append(metrics_text(metadata))
    trained = (metadata.provenance or {}).get("trained_at") if metadata else None
    if trained:
        notes.append(f"Trained: {trained}")
    footer.text(0, 1, "\n".join(notes), fontsize=9, va="top", wrap=True, linespacing=1.5)
    footer.text(0, 0.05, NOTICE, fontsize=11, fontweight="bold", color="#8b1a1a", va="bottom")
    return fig


def export_report(path: str | Path, prediction: Prediction, **figure_options) -> Path:
    """Write the report to `path` (.pdf or .png) atomically; returns the path written.

    `figure_options` are those of `build_report_figure` (image, heatmap, metadata, ...).
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise UserError(f'Cannot write a report to "{target}": choose a .pdf or .png file name')
    fig = build_report_figure(prediction, **figure_options)
    try:
        atomic_save(target, lambda tmp: fig.savefig(tmp, format=suffix[1:], dpi=150 if suffix == ".png" else 100))
    except OSError as err:
        raise UserError(f'Cannot write the report to "{target}": {err.strerror or err}') from err
    return target
