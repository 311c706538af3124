"""Judging a classifier the way a clinician would read it, on a split it never trained on.

Metrics come from scikit-learn; each carries a bootstrap 95% confidence interval (resampling
images, with a fixed seed). Calibration: expected calibration error (ECE) before and after
temperature scaling, the temperature fitted on the validation split by minimising the negative
log-likelihood. The model is run through the app's own service, so what is judged is exactly
what a user gets.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.atomic import atomic_save, atomic_write
from retina_desktop.calibration import apply_temperature
from retina_desktop.model_files import read_sidecar, sidecar_path_for, write_sidecar

from .datasets import Dataset, load_arrays, load_dataset

ECE_BINS = 15
# The specificity a two-class model's operating point must keep on the validation split.
MIN_SPECIFICITY = 0.9


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises validation negative log-likelihood."""
    from scipy.optimize import minimize_scalar

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


def _point_metrics(probs: np.ndarray, labels: np.ndarray, k: int) -> dict[str, Any]:
    """Every figure for one sample of (probs, labels); NaN where a class is absent."""
    predicted = probs.argmax(axis=1)
    with warnings.catch_warnings():
        # A bootstrap resample may miss a class; the NaNs that follow are handled by ci().
        warnings.simplefilter("ignore", UserWarning)
        return _point_metrics_quiet(probs, labels, predicted, k)


def _point_metrics_quiet(probs, labels, predicted, k):
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    matrix = confusion_matrix(labels, predicted, labels=list(range(k)))
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, labels=list(range(k)), zero_division=0
    )
    out: dict[str, Any] = {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "macro_f1": float(np.mean(f1)),
    }
    aucs = []
    for c in range(k):
        positives = labels == c
        tn = matrix.sum() - matrix[c, :].sum() - matrix[:, c].sum() + matrix[c, c]
        fp = matrix[:, c].sum() - matrix[c, c]
        auc = roc_auc_score(positives, probs[:, c]) if 0 < positives.sum() < len(labels) else np.nan
        aucs.append(auc)
        out[f"c{c}"] = {
            "sensitivity": recall[c],
            "specificity": tn / (tn + fp) if tn + fp else np.nan,
            "precision": precision[c],
            "f1": f1[c],
            "auc": auc,
        }
    # With two classes the one-vs-rest AUCs are the same curve; report it once.
    out["macro_auc"] = float(aucs[1]) if k == 2 else float(np.nanmean(aucs))
    return out


def compute_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The metrics object of `evaluate --json`, with `_ci` twins ([low, high], 95%)."""
    from sklearn.metrics import confusion_matrix

    k = len(classes)
    point = _point_metrics(probs, labels, k)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(labels), len(labels))
        samples.append(_point_metrics(probs[pick], labels[pick], k))

    def ci(getter) -> list[float]:
        values = np.array([getter(s) for s in samples], dtype=float)
        values = values[~np.isnan(values)]
        if not len(values):
            return [float("nan"), float("nan")]
        return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]

    result: dict[str, Any] = {"n": int(len(labels))}
    for name in ("accuracy", "balanced_accuracy", "macro_auc", "macro_f1"):
        result[name] = round(float(point[name]), 4)
        result[f"{name}_ci"] = ci(lambda s, name=name: s[name])
    result["per_class"] = {}
    for c, cls in enumerate(classes):
        entry = {"n": int((labels == c).sum())}
        for name in ("sensitivity", "specificity", "precision", "f1", "auc"):
            entry[name] = round(float(point[f"c{c}"][name]), 4)
            entry[f"{name}_ci"] = ci(lambda s, c=c, name=name: s[f"c{c}"][name])
        result["per_class"][cls] = entry
    result["confusion_matrix"] = confusion_matrix(labels, probs.argmax(1), labels=list(range(k))).tolist()
    return result


def binary_operating_point(probs: np.ndarray, labels: np.ndarray, positive: int, min_specificity: float = 0.9) -> dict:
    """Best sensitivity at specificity >= `min_specificity` (the OCT target's question)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels == positive, probs[:, positive])
    ok = (1 - fpr) >= min_specificity
    i = int(np.argmax(np.where(ok, tpr, -1)))
    return {
        "min_specificity": min_specificity,
        "sensitivity": round(float(tpr[i]), 4),
        "specificity": round(float(1 - fpr[i]), 4),
        "threshold": round(float(min(thresholds[i], 1.0)), 6),
    }


def open_classifier(model_path: Path, dataset: Dataset, trust: bool = False):
    """The app's service for `model_path` (Keras path), checked against the data set's classes."""
    from retina_desktop.errors import UserError
    from retina_desktop.service import Classifier

    classifier = Classifier(model_path, trust_model=trust, backend="keras")
    classes = classifier.bundle().metadata.classes
    if classes != dataset.classes:
        raise UserError(
            f'The model "{model_path}" has classes {classes}, the data set {dataset.root} has {dataset.classes}'
        )
    return classifier


def predict_samples(classifier, dataset: Dataset, split: str):
    """Raw probabilities for one split through the app's service, plus integer labels."""
    spec = classifier.bundle().metadata.input
    images, labels = load_arrays(dataset, dataset.subset(split), spec, progress=False)
    return classifier.predict_arrays(images, calibrated=False), labels


def evaluate_bundle(
    model_path: Path,
    dataset: Dataset,
    *,
    split: str = "test",
    out_dir: Path | None = None,
    store: bool = False,
    n_bootstrap: int = 1000,
    trust: bool = False,
    quiet: bool = False,
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metrics on `split`, temperature fitted on val; writes metrics.json and plots to out_dir.

    `sources` maps a source name to a regular expression over file paths: each class's
    sensitivity is then also reported per source (`by_source`), because a data set that mixes
    cameras can score well on the easy source and hide a weak one."""
    classifier = open_classifier(model_path, dataset, trust)
    bundle = classifier.bundle()
    probs, labels = predict_samples(classifier, dataset, split)
    temperature = bundle.metadata.temperature
    if dataset.subset("val") and split != "val":
        val_probs, val_labels = predict_samples(classifier, dataset, "val")
        temperature = fit_temperature(val_probs, val_labels)
    calibrated = apply_temperature(probs, temperature)
    metrics = compute_metrics(calibrated, labels, dataset.classes, n_bootstrap=n_bootstrap)
    metrics["ece_uncalibrated"] = round(expected_calibration_error(probs, labels), 4)
    metrics["ece"] = round(expected_calibration_error(calibrated, labels), 4)
    metrics["temperature"] = round(temperature, 4)
    metrics["split"] = split
    metrics["data"] = str(dataset.root)
    if sources:
        files = [sample.file for sample in dataset.subset(split)]
        metrics["by_source"] = sensitivity_by_source(calibrated, labels, files, dataset.classes, sources)
    decision = {}
    if len(dataset.classes) == 2 and dataset.subset("val") and split != "val":
        # The operating point is chosen on validation and only then measured on `split`:
        # choosing it on the test split would flatter it.
        positive = _scarce_class(labels)
        val_calibrated = apply_temperature(val_probs, temperature)
        chosen = binary_operating_point(val_calibrated, val_labels, positive, MIN_SPECIFICITY)
        threshold = chosen["threshold"]
        called = calibrated[:, positive] >= threshold
        metrics["operating_point"] = {
            "positive_class": dataset.classes[positive],
            "threshold": threshold,
            "chosen_on": f"val split, specificity >= {MIN_SPECIFICITY}",
            "sensitivity": round(float(called[labels == positive].mean()), 4),
            "specificity": round(float((~called[labels != positive]).mean()), 4),
        }
        decision = {k: metrics["operating_point"][k] for k in ("positive_class", "threshold", "chosen_on")}
    if out_dir is not None:
        out_dir = Path(out_dir)
        with atomic_write(out_dir / "metrics.json") as handle:
            json.dump(metrics, handle, indent=2)
        from .plots import plot_confusion, plot_reliability, plot_roc

        atomic_save(out_dir / "roc.png", lambda p: plot_roc(calibrated, labels, dataset.classes, p))
        atomic_save(out_dir / "confusion.png", lambda p: plot_confusion(metrics["confusion_matrix"], dataset.classes, p))
        atomic_save(
            out_dir / "reliability.png",
            lambda p: plot_reliability(probs, calibrated, labels, ECE_BINS, p),
        )
    if store:
        sidecar = sidecar_path_for(model_path)
        metadata = read_sidecar(sidecar) or bundle.metadata
        metadata.temperature = round(temperature, 4)
        metadata.decision = decision
        metadata.metrics = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
        metadata.metrics["confusion_matrix"] = metrics["confusion_matrix"]
        write_sidecar(sidecar, metadata)
    if not quiet:
        print(format_summary(metrics))
    return metrics


def sensitivity_by_source(
    probs: np.ndarray, labels: np.ndarray, files: list[str], classes: list[str], sources: dict[str, str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{source: {class: {"n", "found", "sensitivity"}}} at the arg-max decision; a file matching
    no pattern counts as "other", and the first matching pattern wins."""
    patterns = [(name, re.compile(pattern)) for name, pattern in sources.items()]
    origin = np.array([next((name for name, rx in patterns if rx.search(f)), "other") for f in files])
    predicted = probs.argmax(1)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for source in [name for name, _ in patterns] + ["other"]:
        for c, cls in enumerate(classes):
            mask = (origin == source) & (labels == c)
            if mask.any():
                found = int((predicted[mask] == c).sum())
                table.setdefault(source, {})[cls] = {
                    "n": int(mask.sum()), "found": found, "sensitivity": round(found / int(mask.sum()), 4)
                }
    return table


def _scarce_class(labels: np.ndarray) -> int:
    counts = np.bincount(labels, minlength=2)
    return int(np.argmin(counts))


def format_summary(metrics: dict[str, Any]) -> str:
    def fig(name: str, source: dict = metrics) -> str:
        low, high = source.get(f"{name}_ci", [float("nan")] * 2)
        return f"{source[name]:.3f} [{low:.3f}, {high:.3f}]"

    lines = [
        f"{metrics['split']} split of {metrics['data']}: n = {metrics['n']} (95% bootstrap CIs)",
        f"  accuracy           {fig('accuracy')}",
        f"  balanced accuracy  {fig('balanced_accuracy')}",
        f"  macro ROC AUC      {fig('macro_auc')}",
        f"  macro F1           {fig('macro_f1')}",
        f"  ECE                {metrics['ece']:.3f} after temperature scaling (T = {metrics['temperature']:.3f}),"
        f" {metrics['ece_uncalibrated']:.3f} before",
        f"  {'class':22s} {'sensitivity':>22s} {'specificity':>22s} {'AUC':>22s}",
    ]
    for cls, entry in metrics["per_class"].items():
        lines.append(
            f"  {cls:22s} {fig('sensitivity', entry):>22s} {fig('specificity', entry):>22s} {fig('auc', entry):>22s}"
        )
    if "operating_point" in metrics:
        op = metrics["operating_point"]
        lines.append(
            f"  {op['positive_class']} at the operating point chosen on the {op['chosen_on']}: "
            f"sensitivity {op['sensitivity']:.3f}, specificity {op['specificity']:.3f} (threshold {op['threshold']:.3f})"
        )
    if "by_source" in metrics:
        lines.append("  sensitivity by source (found / n):")
        for source, entry in metrics["by_source"].items():
            cells = ", ".join(f"{cls} {e['found']}/{e['n']} ({e['sensitivity']:.2f})" for cls, e in entry.items())
            lines.append(f"    {source:14s} {cells}")
    return "\n".join(lines)


def parse_sources(items: list[str] | None) -> dict[str, str] | None:
    """`--source NAME=REGEX` options as an ordered dict; a bad one is a usage error."""
    from retina_desktop.errors import UserError

    sources = {}
    for item in items or []:
        name, sep, pattern = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f'--source needs NAME=REGEX, got "{item}"')
        try:
            re.compile(pattern)
        except re.error as err:
            raise UserError(f'--source {name}: "{pattern}" is not a regular expression ({err})') from err
        sources[name.strip()] = pattern
    return sources or None


def run_evaluate(args) -> int:
    dataset = load_dataset(args.data)
    metrics = evaluate_bundle(
        Path(args.model),
        dataset,
        split=args.split,
        out_dir=Path(args.out) if args.out else None,
        store=args.store_temperature,
        n_bootstrap=args.bootstrap,
        trust=args.trust_model,
        quiet=args.json,
        sources=parse_sources(args.source),
    )
    if args.json:
        json.dump(metrics, sys.stdout)
        sys.stdout.write("\n")
    return 0
