"""Evaluation figures (ROC curves, confusion matrix, reliability diagram) as PNG files."""

from __future__ import annotations

import numpy as np


def _figure(width: float = 5.0, height: float = 4.5):
    # The object-oriented API with the Agg canvas: no pyplot state, safe off the main thread.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def plot_roc(probs: np.ndarray, labels: np.ndarray, classes: list[str], path: str) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    figure = _figure()
    axes = figure.add_subplot()
    for c, name in enumerate(classes):
        positives = labels == c
        if 0 < positives.sum() < len(labels):
            fpr, tpr, _ = roc_curve(positives, probs[:, c])
            axes.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(positives, probs[:, c]):.3f})")
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="1 - specificity", ylabel="sensitivity", title="One-vs-rest ROC curves")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")


def plot_confusion(matrix: list[list[int]], classes: list[str], path: str) -> None:
    values = np.asarray(matrix)
    figure = _figure(5.5, 4.8)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    axes.set_yticks(range(len(classes)), classes, fontsize=8)
    axes.set(xlabel="model output", ylabel="reference label", title="Confusion matrix")
    for (i, j), count in np.ndenumerate(values):
        colour = "white" if count > values.max() / 2 else "black"
        axes.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, format="png")


def plot_reliability(raw: np.ndarray, calibrated: np.ndarray, labels: np.ndarray, bins: int, path: str) -> None:
    figure = _figure()
    axes = figure.add_subplot()
    edges = np.linspace(0, 1, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for probs, name in ((raw, "before scaling"), (calibrated, "after temperature scaling")):
        confidence = probs.max(1)
        correct = probs.argmax(1) == labels
        which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
        accuracy = [correct[which == b].mean() if (which == b).any() else np.nan for b in range(bins)]
        axes.plot(centres, accuracy, marker="o", label=name)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set(xlabel="confidence", ylabel="accuracy", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
