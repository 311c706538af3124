"""One of each metric: ROC AUC (per class and macro), the point figures of a confusion matrix,
bootstrap intervals, calibration (expected calibration error, the fitted temperature) and a
two-class model's operating point.

Numpy, scipy and scikit-learn only. Every figure in metrics.json, the pipeline's results and the
trainer's choice of best epoch is made here, so that they agree on what "macro AUC" means.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ECE_BINS = 15
# The specificity a two-class model's operating point must keep on the validation split.
MIN_SPECIFICITY = 0.9


# --- bootstrap intervals ------------------------------------------------------------------


def percentile_ci(values: Sequence[float]) -> list[float]:
    """The 95% percentile interval of bootstrap values; NaNs (a resample that missed a class,
    so the figure does not exist for it) are left out."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def bootstrap_figures(
    figures: Callable[[np.ndarray], dict[str, float]], n: int, *, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """`figures(indices)` on all `n` items, each figure with its 95% bootstrap interval.

    `figures` maps an index array (all items, or one resample of them) to named numbers, NaN
    where a figure does not exist; returns {name: value, name_ci: [low, high]}.
    """
    point = figures(np.arange(n))
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a resample missing a class: NaN, dropped
        samples = [figures(rng.integers(0, n, n)) for _ in range(n_bootstrap)]
    out: dict[str, Any] = {}
    for name, value in point.items():
        out[name] = None if np.isnan(value) else round(float(value), 4)
        out[f"{name}_ci"] = percentile_ci([s[name] for s in samples]) if out[name] is not None else None
    return out


# --- ROC AUC ------------------------------------------------------------------------------


def rank_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), NaN without both kinds.

    Equal to scikit-learn's `roc_auc_score`, without its per-call checks: the bootstrap calls
    it thousands of times."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def class_auc(labels: np.ndarray, probs: np.ndarray, c: int, *, every_class: bool = False) -> float:
    """One-vs-rest ROC AUC of class `c` (column `c` of `probs`), scikit-learn's; NaN where the
    class lacks positives or negatives in `labels`.

    With `every_class` such a class is handed to scikit-learn all the same, as its
    `multi_class="ovr"` does: a warning and NaN (a ValueError in older scikit-learn). The
    trainer judges its epochs that way and handles that case itself.
    """
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(labels) == c
    if every_class or 0 < positive.sum() < len(positive):
        return roc_auc_score(positive, probs[:, c])
    return np.nan


def class_aucs(labels: np.ndarray, probs: np.ndarray, *, every_class: bool = False) -> list[float]:
    """`class_auc` of every class, in column order."""
    return [class_auc(labels, probs, c, every_class=every_class) for c in range(probs.shape[1])]


def macro_auc(
    labels: np.ndarray, probs: np.ndarray, *, aucs: Sequence[float] | None = None, every_class: bool = False
) -> float:
    """The macro ROC AUC: a two-class model's AUC of its second class; with more classes the
    mean of the one-vs-rest AUCs of the classes present (those with both positives and
    negatives in `labels`); NaN with fewer than two classes present.

    `aucs`: the per-class AUCs when the caller has them already (`class_aucs`). `every_class`:
    a class missing from `labels` counts too, as in scikit-learn's `multi_class="ovr"` macro
    average (see `class_auc`), which makes the figure NaN (or raises ValueError).
    """
    if len(labels) and int(np.max(labels)) >= probs.shape[1]:
        # A probe whose train split lacked a class has fewer columns than labels: no AUC matches.
        raise ValueError(f"labels index class {int(np.max(labels))}, probabilities have {probs.shape[1]} columns")
    # With two classes the one-vs-rest AUCs are the same curve; report it once.
    if probs.shape[1] == 2:
        return float(aucs[1] if aucs is not None else class_auc(labels, probs, 1, every_class=every_class))
    if aucs is None:
        aucs = class_aucs(labels, probs, every_class=every_class)
    if every_class:
        return float(np.mean(aucs))
    present = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(present)) if present else float("nan")


# --- the point figures and their intervals ------------------------------------------------


def _point_metrics(probs: np.ndarray, labels: np.ndarray, k: int, present: list[int]) -> dict[str, Any]:
    """Every figure for one sample of (probs, labels); NaN where a class is absent."""
    with warnings.catch_warnings():
        # A bootstrap resample may miss a class; the NaNs that follow are handled by ci().
        warnings.simplefilter("ignore", UserWarning)
        return _point_metrics_quiet(probs, labels, probs.argmax(axis=1), k, present)


def _point_metrics_quiet(probs, labels, predicted, k, present):
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    matrix = confusion_matrix(labels, predicted, labels=list(range(k)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=list(range(k)), zero_division=0
    )
    out: dict[str, Any] = {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        # Over the classes the data holds: an absent class has no F1 to average.
        "macro_f1": float(np.mean(f1[present])),
    }
    aucs = class_aucs(labels, probs)
    for c in range(k):
        tn = matrix.sum() - matrix[c, :].sum() - matrix[:, c].sum() + matrix[c, c]
        fp = matrix[:, c].sum() - matrix[c, c]
        out[f"c{c}"] = {
            "sensitivity": recall[c],
            "specificity": tn / (tn + fp) if tn + fp else np.nan,
            "precision": precision[c],
            "f1": f1[c],
            "auc": aucs[c],
        }
    out["macro_auc"] = macro_auc(labels, probs, aucs=aucs)
    return out


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The metrics object of `evaluate --json`, with `_ci` twins ([low, high], 95%).

    `classes` are the model's; `labels` index them. Per-class figures and the macro averages
    cover only the classes present in `labels` (an external set may hold two of four), and
    `classes_present` says which those were. The decision is the larger probability.
    """
    from sklearn.metrics import confusion_matrix

    k = len(classes)
    present = sorted(int(c) for c in np.unique(labels))
    point = _point_metrics(probs, labels, k, present)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(labels), len(labels))
        samples.append(_point_metrics(probs[pick], labels[pick], k, present))

    def ci(getter) -> list[float]:
        return percentile_ci([getter(s) for s in samples])

    result: dict[str, Any] = {"n": len(labels), "classes_present": [classes[c] for c in present]}
    for name in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
        result[name] = round(float(point[name]), 4)
        result[f"{name}_ci"] = ci(lambda s, name=name: s[name])
    result["per_class"] = {}
    for c in present:
        cls = classes[c]
        entry = {"n": int((labels == c).sum())}
        for name in ("sensitivity", "specificity", "precision", "f1", "auc"):
            entry[name] = round(float(point[f"c{c}"][name]), 4)
            entry[f"{name}_ci"] = ci(lambda s, c=c, name=name: s[f"c{c}"][name])
        result["per_class"][cls] = entry
    result["confusion_matrix"] = confusion_matrix(labels, probs.argmax(1), labels=list(range(k))).tolist()
    return result


# --- calibration --------------------------------------------------------------------------


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood."""
    from scipy.optimize import minimize_scalar

    from retina_desktop.inference.calibration import apply_temperature

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probs, float(np.exp(log_t)))
        return float(-np.mean(np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-12, 1))))

    result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over confidence bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(ece)


# --- a two-class model's operating point --------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """The threshold on p(positive) with the best sensitivity at a specificity of at least
    `min_specificity`, and the figures it reached where it was chosen."""

    min_specificity: float
    sensitivity: float
    specificity: float
    threshold: float

    def to_dict(self) -> dict[str, float]:
        """As it was always written: these four keys in this order."""
        return {"min_specificity": self.min_specificity, "sensitivity": self.sensitivity,
                "specificity": self.specificity, "threshold": self.threshold}


def binary_operating_point(
    probs: np.ndarray, labels: np.ndarray, positive: int, min_specificity: float = MIN_SPECIFICITY
) -> OperatingPoint:
    """Best sensitivity at specificity >= `min_specificity` (the OCT target's question)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels == positive, probs[:, positive])
    ok = (1 - fpr) >= min_specificity
    i = int(np.argmax(np.where(ok, tpr, -1)))
    return OperatingPoint(
        min_specificity=min_specificity,
        sensitivity=round(float(tpr[i]), 4),
        specificity=round(float(1 - fpr[i]), 4),
        threshold=round(float(min(thresholds[i], 1.0)), 6),
    )
