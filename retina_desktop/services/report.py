"""The wording of a result, and the report a user exports from the Analyse tab.

The wording itself is `records.Answer` (one rule for every output); this module keeps the
helpers the GUI calls by their old names, and owns the one-page report (PDF or PNG): the image,
the heatmap, every class's probability, the model's name, version and test metrics, the date and
the notice that this is model output, not a diagnosis. Drawn on a matplotlib `Figure` (no pyplot state, no GUI), and
saved atomically where the user chose.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.core.prediction import Prediction
from retina_desktop.core.wording import display_name

NOTICE = "Model output, not a diagnosis. Retina Desktop is not a medical device."
REPORT_SUFFIXES = (".pdf", ".png")
HEADER_WIDTH = 96  # characters of a 10-point header line on the A4 page
_A4_PORTRAIT = (8.27, 11.69)
# Bar colours: the reported class, the others, and every bar of an image not judged.
TOP_COLOUR, OTHER_COLOUR, GREY_COLOUR = "#1f5f8b", "#9bb7cc", "#c8c8c8"
THRESHOLD_COLOUR = "#b03a2e"


def _at(prediction: Prediction, threshold: float | None) -> Prediction:
    """The prediction judged against another unsure level (the caller's setting)."""
    if threshold is None or threshold == prediction.unsure_below:
        return prediction
    return dataclasses.replace(prediction, unsure_below=threshold)


def result_text(prediction: Prediction) -> str:
    """The headline: the model's answer, or, when the image failed its checks, no answer."""
    return prediction.answer().headline()


def is_unsure(prediction: Prediction, threshold: float | None = None) -> bool:
    """Unsure or not judged: the answers to set apart (batch table colour)."""
    answer = _at(prediction, threshold).answer()
    return answer.unsure or answer.not_judged


def unsure_text(prediction: Prediction, threshold: float | None = None) -> str:
    """The warning shown when the image failed its checks or the model is unsure; else empty."""
    return _at(prediction, threshold).answer().warning()


def draw_probabilities(axes, prediction_or_probs, label: str | None = None, *, operating_point=None,
                       greyed: bool = False, fontsize: int = 9, background: str | None = None) -> None:
    """One bar per class on matplotlib `axes`: the reported class dark, a marker line at the
    operating threshold on the positive class's bar, every bar grey when not judged. Shared by
    the GUI's chart and the report, so both draw the same picture."""
    if isinstance(prediction_or_probs, Prediction):
        p = prediction_or_probs
        probabilities, label = p.probabilities, p.label
        operating_point, greyed = p.operating_point, not p.fit_to_judge
    else:
        probabilities = prediction_or_probs
    if background:
        axes.set_facecolor(background)
    names = list(probabilities)
    positions = list(range(len(names)))[::-1]
    values = [probabilities[n] for n in names]
    top = label if label in probabilities else (max(probabilities, key=probabilities.__getitem__) if names else None)
    if greyed:
        colours = [GREY_COLOUR] * len(names)
    else:
        colours = [TOP_COLOUR if n == top else OTHER_COLOUR for n in names]
    axes.barh(positions, values, color=colours, height=0.65)
    axes.set_yticks(positions, [display_name(n) for n in names], fontsize=fontsize,
                    color="0.45" if greyed else "black")
    text_colour = "0.45" if greyed else "black"
    for y, value in zip(positions, values):
        if value > 0.8:  # no room after the bar: write inside its end
            axes.text(value - 0.02, y, f"{value:.0%}", va="center", ha="right", fontsize=fontsize - 1,
                      color="0.3" if greyed else "white")
        else:
            axes.text(value + 0.02, y, f"{value:.0%}", va="center", fontsize=fontsize - 1, color=text_colour)
    if operating_point is not None and operating_point.positive_class in probabilities:
        y = positions[names.index(operating_point.positive_class)]
        t = operating_point.threshold
        axes.plot([t, t], [y - 0.45, y + 0.45], color="0.5" if greyed else THRESHOLD_COLOUR, linewidth=2,
                  solid_capstyle="butt")
        kind = "referral threshold" if operating_point.referral else "threshold"
        axes.text(t, y + 0.42, f"{kind} {t:.2f}", fontsize=fontsize - 2, va="bottom", ha="left",
                  color="0.5" if greyed else THRESHOLD_COLOUR)
    axes.set_xlim(0, 1)
    if names:
        axes.set_ylim(-0.6, len(names) - 0.4 + (0.3 if operating_point is not None else 0))


def metrics_text(metadata: ModelMetadata | None) -> str:
    """One line of the model's test metrics, or a plain statement that there are none."""
    metrics = (metadata.metrics if metadata else None) or {}
    parts = []
    for key, label in (
        ("accuracy", "accuracy"),
        ("balanced_accuracy", "balanced accuracy"),
        ("macro_auc", "macro AUC"),
    ):
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
    heatmap_class: str | None = None,
):
    """The report page as a matplotlib Figure (A4 portrait).

    `image` is the picture to show (default: the image as the model saw it); `heatmap` is
    Grad-CAM over the model's input (see `heatmaps.gradcam`) for `heatmap_class` (the class the
    user chose; default the reported one), placed onto `image`.
    """
    from matplotlib.figure import Figure

    from retina_desktop.inference.heatmaps import overlay, place_heatmap

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
        model_line += f", model version {metadata.version}, modality {metadata.modality}"
    lines = [
        f"Image: {Path(prediction.file).name}",
        # At 10 points a line of the page holds about 100 characters; the shipped fundus model's
        # name and version alone ran past the right edge.
        _wrapped(f"Model: {model_line}", HEADER_WIDTH),
        f"Date: {created.strftime('%Y-%m-%d %H:%M %Z').strip()}",
    ]
    header.text(0, 0.68, "\n".join(lines), fontsize=10, va="top", linespacing=1.6)

    left = fig.add_subplot(grid[1, 0])
    left.imshow(picture)
    left.set_title("Image", fontsize=10)
    left.axis("off")
    right = fig.add_subplot(grid[1, 1])
    if heatmap is not None:
        # On the picture the model read (`image`), the heatmap goes where the model's input lay
        # on it; on the model's own input (no `image`), it covers it whole.
        placed = heatmap
        if image is not None and metadata is not None:
            size = (picture.shape[1], picture.shape[0])
            placed = place_heatmap(heatmap, size, metadata.input, prediction.field_of_view)
        right.imshow(overlay(picture, placed, opacity))
        right.set_title(f"Heatmap (Grad-CAM) for {display_name(heatmap_class or prediction.label)}", fontsize=10)
    else:
        right.text(0.5, 0.5, "No heatmap", ha="center", va="center", color="0.4")
        right.set_title("Heatmap", fontsize=10)
    right.axis("off")

    # The class names need their own room on the left of the bars.
    bars = fig.add_subplot(grid[2, :].subgridspec(1, 2, width_ratios=[0.24, 0.76])[0, 1])
    draw_probabilities(bars, prediction, fontsize=10)
    bars.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0%", "25%", "50%", "75%", "100%"], fontsize=9)
    bars.set_xlabel("Probability (model output)", fontsize=9)
    answer = prediction.answer()
    header.text(0, -0.12, answer.headline(), fontsize=13, fontweight="bold", va="top")
    title = "Probability per class" + (" (for reference only: not judged)" if answer.not_judged else "")
    bars.set_title(title, fontsize=10, loc="left")
    for side in ("top", "right"):
        bars.spines[side].set_visible(False)

    footer = fig.add_subplot(grid[3, :])
    footer.axis("off")
    notes = [text for text in (answer.explanation(), answer.warning(), answer.hint()) if text]
    notes.append(metrics_text(metadata))
    trained = (metadata.provenance or {}).get("trained_at") if metadata else None
    if trained:
        notes.append(f"Trained: {trained}")
    footer.text(0, 1, "\n".join(_wrapped(n) for n in notes), fontsize=9, va="top", linespacing=1.5)
    footer.text(0, 0.05, NOTICE, fontsize=11, fontweight="bold", color="#8b1a1a", va="bottom")
    return fig


def _wrapped(text: str, width: int = 110) -> str:
    # matplotlib's own wrap works on the figure edge, which a long answer runs past in a PDF.
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


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
