"""Judging a classifier the way a clinician would read it, on data it never trained on.

Metrics come from scikit-learn; each carries a bootstrap 95% confidence interval (resampling
images, with a fixed seed). Calibration: expected calibration error (ECE) before and after
temperature scaling, the temperature fitted on the validation split by minimising the negative
log-likelihood. The model is run through the app's own service, so what is judged is exactly
what a user gets.

Generalisation is judged three ways, because one in-distribution test split says little:
- each disease against the healthy class (`versus_normal`), on the images of those two only,
  which is the question a screening clinic asks and the one an external data set holding a
  subset of the model's classes (say diabetic retinopathy and normal only) can answer;
- per source (`per_source`), from the splits.csv `source` column (or `--source` patterns): a
  model that scores well on one camera and poorly on another is a camera detector;
- where the heatmaps lie (`heatmap_in_fov`): the share of Grad-CAM mass inside the fundus field
  of view; evidence on the black frame or the border is a shortcut.

Figures on an external data set can be stored in the model's sidecar under
`metrics["external"][name]`, beside (never in place of) the test-split figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.quiet import keras_backend
from retina_desktop.inference.calibration import apply_temperature
from retina_desktop.inference.model_files import read_sidecar, sidecar_path_for, write_sidecar
from training.classifier.config import HEALTHY_CLASS, HEATMAP_IMAGES, EvaluateOptions
from training.classifier.referral import format_screening, screening_by_source, screening_figures
from training.classifier.statistics import bootstrap_figures, percentile_ci, rank_auc
from training.datasets import Dataset, class_indices, grades_of, load_arrays, load_dataset

logger = logging.getLogger(__name__)
ECE_BINS = 15
# The specificity a two-class model's operating point must keep on the validation split.
MIN_SPECIFICITY = 0.9
HEATMAP_SEED = 0


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


def _point_metrics(probs: np.ndarray, labels: np.ndarray, k: int, present: list[int]) -> dict[str, Any]:
    """Every figure for one sample of (probs, labels); NaN where a class is absent."""
    predicted = probs.argmax(axis=1)
    with warnings.catch_warnings():
        # A bootstrap resample may miss a class; the NaNs that follow are handled by ci().
        warnings.simplefilter("ignore", UserWarning)
        return _point_metrics_quiet(probs, labels, predicted, k, present)


def _point_metrics_quiet(probs, labels, predicted, k, present):
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
        # Over the classes the data holds: an absent class has no F1 to average.
        "macro_f1": float(np.mean(f1[present])),
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
    present_aucs = [aucs[c] for c in present if not np.isnan(aucs[c])]
    out["macro_auc"] = float(aucs[1]) if k == 2 else float(np.mean(present_aucs)) if present_aucs else np.nan
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
    """The app's service for `model_path` (Keras path); the data set's classes must be among the
    model's (a subset is fine: an external set may hold two of them)."""
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(model_path, trust_model=trust, backend="keras")
    class_indices(dataset, classifier.bundle().metadata.classes, model_path)
    return classifier


def load_split(classifier, dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images fitted to the model's input, with labels indexing the MODEL's classes."""
    metadata = classifier.bundle().metadata
    index_of = class_indices(dataset, metadata.classes, classifier.model_path)
    return load_arrays(dataset, dataset.subset(split), metadata.input, progress=False, index_of=index_of)


def predict_samples(classifier, dataset: Dataset, split: str):
    """Raw probabilities for one split through the app's service, plus integer labels."""
    images, labels = load_split(classifier, dataset, split)
    return classifier.predict_arrays(images, calibrated=False), labels


def reported_labels(probs: np.ndarray, metadata) -> np.ndarray:
    """The class index the app reports for each row of calibrated probabilities: the larger
    probability, or a two-class model's stored operating threshold (`ModelMetadata.label_for`)."""
    return np.array([metadata.label_for([float(p) for p in row]) for row in probs], dtype=np.int64)


def disease_versus_healthy(
    p_disease: np.ndarray,
    is_disease: np.ndarray,
    reported: np.ndarray,
    disease: int,
    healthy: int,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """One disease against the healthy class, on images of those two classes only.

    `p_disease`: each image's probability of the disease; `is_disease`: its reference label;
    `reported`: the class index the app reports. Figures: ROC AUC of p(disease); sensitivity,
    the share of disease images reported as that disease; referred, the share reported as
    anything but healthy (what a screening programme would refer); specificity, the share of
    healthy eyes called healthy. Each with a 95% bootstrap interval.
    """
    is_disease = np.asarray(is_disease, dtype=bool)
    reported = np.asarray(reported)

    def figures(idx: np.ndarray) -> dict[str, float]:
        positive, said = is_disease[idx], reported[idx]
        return {
            "auc": rank_auc(positive, p_disease[idx]),
            "sensitivity": float(np.mean(said[positive] == disease)) if positive.any() else np.nan,
            "referred": float(np.mean(said[positive] != healthy)) if positive.any() else np.nan,
            "specificity": float(np.mean(said[~positive] == healthy)) if (~positive).any() else np.nan,
        }

    out: dict[str, Any] = {"n_disease": int(is_disease.sum()), "n_healthy": int((~is_disease).sum())}
    out.update(bootstrap_figures(figures, len(is_disease), n_bootstrap=n_bootstrap, seed=seed))
    return out


def versus_healthy(
    probs: np.ndarray,
    labels: np.ndarray,
    reported: np.ndarray,
    classes: list[str],
    healthy: str = HEALTHY_CLASS,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Each disease present in `labels` against `healthy`: {"healthy_class", "diseases": {name:
    figures}}. None when the model has no such class or the data lacks it or every disease."""
    if healthy not in classes:
        return None
    h = classes.index(healthy)
    present = sorted(int(c) for c in np.unique(labels))
    diseases = [c for c in present if c != h]
    if h not in present or not diseases:
        return None
    table = {}
    for d in diseases:
        keep = (labels == d) | (labels == h)
        table[classes[d]] = disease_versus_healthy(
            probs[keep, d], labels[keep] == d, reported[keep], d, h, n_bootstrap=n_bootstrap, seed=seed
        )
    return {"healthy_class": healthy, "diseases": table}


def source_figures(
    probs: np.ndarray,
    labels: np.ndarray,
    reported: np.ndarray,
    classes: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Figures on the images of one source: for each class it holds, n, sensitivity (the app's
    answer) and the one-vs-rest ROC AUC within the source (only where the source holds both
    that class and others); the macro AUC averages the classes that have one."""
    present = sorted(int(c) for c in np.unique(labels))
    with_auc = [c for c in present if 0 < (labels == c).sum() < len(labels)]

    def figures(idx: np.ndarray) -> dict[str, float]:
        truth, said = labels[idx], reported[idx]
        out: dict[str, float] = {}
        for c in present:
            positive = truth == c
            out[f"sensitivity:{c}"] = float(np.mean(said[positive] == c)) if positive.any() else np.nan
        aucs = [rank_auc(truth == c, probs[idx, c]) for c in with_auc]
        out.update({f"auc:{c}": a for c, a in zip(with_auc, aucs)})
        # A resample that lost a class has no macro AUC over the same classes: left out.
        out["macro_auc"] = float(np.mean(aucs)) if aucs and not np.isnan(aucs).any() else np.nan
        return out

    figs = bootstrap_figures(figures, len(labels), n_bootstrap=n_bootstrap, seed=seed)
    result: dict[str, Any] = {
        "n": len(labels),
        "macro_auc": figs["macro_auc"],
        "macro_auc_ci": figs["macro_auc_ci"],
        "macro_auc_over": [classes[c] for c in with_auc],
        "classes": {},
    }
    for c in present:
        positive = labels == c
        result["classes"][classes[c]] = {
            "n": int(positive.sum()),
            "found": int((reported[positive] == c).sum()),
            "sensitivity": figs[f"sensitivity:{c}"],
            "sensitivity_ci": figs[f"sensitivity:{c}_ci"],
            "auc": figs.get(f"auc:{c}"),
            "auc_ci": figs.get(f"auc:{c}_ci"),
        }
    return result


def per_source(
    probs: np.ndarray,
    labels: np.ndarray,
    reported: np.ndarray,
    origins: Sequence[str],
    classes: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """{source: `source_figures` on that source's images}, sources in name order."""
    origins = np.asarray(origins)
    table = {}
    for source in sorted(set(origins.tolist())):
        mask = origins == source
        table[source] = source_figures(
            probs[mask], labels[mask], reported[mask], classes, n_bootstrap=n_bootstrap, seed=seed
        )
    return table


def sample_origins(samples: Sequence[Any], sources: dict[str, str] | None = None) -> list[str] | None:
    """Where each sample came from: the splits.csv `source` column when the data set has one,
    else the first matching `--source` pattern ("other" when none matches), else None."""
    if any(sample.source for sample in samples):
        return [sample.source or "unknown" for sample in samples]
    if sources:
        return _origins_by_pattern([sample.file for sample in samples], sources)
    return None


def _origins_by_pattern(files: list[str], sources: dict[str, str]) -> list[str]:
    patterns = [(name, re.compile(pattern)) for name, pattern in sources.items()]
    return [next((name for name, rx in patterns if rx.search(f)), "other") for f in files]


def heatmap_mass_inside(heatmap: np.ndarray, inside: np.ndarray) -> float:
    """The share of a heatmap's mass on the pixels where `inside` is True (NaN when empty)."""
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    total = float(heatmap.sum())
    return float(heatmap[np.asarray(inside, dtype=bool)].sum() / total) if total > 0 else float("nan")


def summarise_shares(shares: Sequence[float]) -> dict[str, Any]:
    """Median and 10th percentile of per-image shares, empty heatmaps (NaN) left out."""
    values = np.asarray(shares, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return {"measured": 0, "median": None, "p10": None}
    return {
        "measured": len(values),
        "median": round(float(np.median(values)), 4),
        "p10": round(float(np.percentile(values, 10)), 4),
    }


def heatmap_in_fov(
    classifier,
    images: np.ndarray,
    probs: np.ndarray,
    reported: np.ndarray,
    count: int = HEATMAP_IMAGES,
    *,
    seed: int = HEATMAP_SEED,
    progress: bool = True,
) -> dict[str, Any]:
    """The share of Grad-CAM mass inside the fundus field of view, over `count` images drawn
    with `seed`.

    Each heatmap is the app's (`heatmaps.heatmap_for`) for the class the app reports, on the
    image as the model saw it; the retina is found on that same image (its fitted field of view,
    or the region unlike the frame where a camera's cut leaves no rim to fit). Images with
    neither are skipped and counted, never counted as "inside".
    """
    from tqdm import tqdm

    from retina_desktop.core.prediction import Prediction
    from retina_desktop.imaging.fov import retina_mask
    from retina_desktop.inference.heatmaps import heatmap_for

    classes = classifier.bundle().classes
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
    shares: list[float] = []
    seconds: list[float] = []
    no_fov = 0
    for i in tqdm(pick, desc="heatmaps", unit="img", disable=not progress, leave=False):
        image = images[i]
        inside = retina_mask(image)
        if inside is None:
            no_fov += 1
            continue
        prediction = Prediction(
            file=f"#{i}",
            label=classes[int(reported[i])],
            confidence=float(probs[i, int(reported[i])]),
            probabilities={name: float(p) for name, p in zip(classes, probs[i])},
            processed_image=image,
        )
        start = time.perf_counter()
        heatmap = heatmap_for(classifier, prediction)
        seconds.append(time.perf_counter() - start)
        shares.append(heatmap_mass_inside(heatmap, inside))
    summary = summarise_shares(shares)
    return {
        "images": len(pick),
        "seed": seed,
        "skipped_no_fov": no_fov,
        "skipped_empty_heatmap": len(shares) - summary["measured"],
        **summary,
        # The median, because the first image pays for tracing the Grad-CAM function.
        "seconds_per_image": round(float(np.median(seconds)), 4) if seconds else None,
        "seconds_total": round(float(np.sum(seconds)), 2),
    }


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
    healthy_class: str = HEALTHY_CLASS,
    heatmaps: int = 0,
    store_external: str | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Metrics on `split`, temperature fitted on val; writes metrics.json and plots to out_dir.

    The data set may hold a subset of the model's classes. `sources` maps a source name to a
    regular expression over file paths: each class's sensitivity is then also reported per
    source (`by_source`), and `per_source` uses them when the splits.csv has no source column.
    `heatmaps` > 0 measures the heatmap mass inside the field of view on that many images
    (fundus models only). `store` writes the temperature and these figures into the sidecar
    as the model's test figures; `store_external` writes them under
    `metrics["external"][store_external]` with `command`, leaving the rest of the sidecar alone.
    """
    classifier = open_classifier(model_path, dataset, trust)
    bundle = classifier.bundle()
    classes = bundle.metadata.classes
    if healthy_class != HEALTHY_CLASS and healthy_class not in classes:
        from retina_desktop.core.errors import UserError

        raise UserError(f'--normal-class "{healthy_class}" is not one of the classes of "{model_path}": {classes}')
    images, labels = load_split(classifier, dataset, split)
    probs = classifier.predict_arrays(images, calibrated=False)
    temperature = bundle.metadata.temperature
    if dataset.subset("val") and split != "val":
        val_probs, val_labels = predict_samples(classifier, dataset, "val")
        temperature = fit_temperature(val_probs, val_labels)
    calibrated = apply_temperature(probs, temperature)
    metrics = compute_metrics(calibrated, labels, classes, n_bootstrap=n_bootstrap)
    metrics["ece_uncalibrated"] = round(expected_calibration_error(probs, labels), 4)
    metrics["ece"] = round(expected_calibration_error(calibrated, labels), 4)
    metrics["temperature"] = round(temperature, 4)
    metrics["split"] = split
    metrics["data"] = str(dataset.root)
    # What the app shows: its stored temperature and operating point, not the ones refitted here,
    # unless this run chooses the referral threshold it will store (then that one is judged).
    shown = bundle.metadata
    referral = None
    if store and dataset.subset("val") and split != "val":
        referral = choose_referral(classifier, dataset, classes, temperature, val_probs, val_labels)
        if referral is not None:
            shown = dataclasses.replace(shown, decision=referral)
    reported = reported_labels(apply_temperature(probs, shown.temperature if referral is None else temperature), shown)
    samples = dataset.subset(split)
    grades = grades_of(samples)
    screening = screening_figures(calibrated, labels, reported, grades, classes, n_bootstrap=n_bootstrap)
    metrics.update(screening)
    point = shown.operating_point()
    if point is not None and point.referral:
        metrics["referral"] = {k: shown.decision[k] for k in ("positive_class", "threshold", "chosen_on", "rule")}
    if sources:
        files = [sample.file for sample in samples]
        metrics["by_source"] = sensitivity_by_source(calibrated, labels, files, classes, sources)
    versus = versus_healthy(calibrated, labels, reported, classes, healthy_class, n_bootstrap=n_bootstrap)
    if versus is not None:
        metrics["versus_normal"] = versus
    origins = sample_origins(samples, sources)
    if origins is not None:
        metrics["per_source"] = per_source(calibrated, labels, reported, origins, classes, n_bootstrap=n_bootstrap)
        by_source = screening_by_source(calibrated, labels, reported, grades, origins, classes,
                                        n_bootstrap=n_bootstrap)
        for source, figures in by_source.items():
            metrics["per_source"].setdefault(source, {}).update(figures)
    # Grad-CAM is traced by TensorFlow: a run on JAX (a GPU machine) leaves the heatmap figure
    # to `evaluate` on a TensorFlow machine.
    if heatmaps > 0 and bundle.metadata.modality == "fundus" and keras_backend() == "tensorflow":
        metrics["heatmap_in_fov"] = _heatmap_figure(classifier, images, calibrated, reported, heatmaps, quiet)
    decision = referral or {}
    if len(classes) == 2 and dataset.subset("val") and split != "val":
        # The operating point is chosen on validation and only then measured on `split`:
        # choosing it on the test split would flatter it.
        positive = _scarce_class(labels)
        val_calibrated = apply_temperature(val_probs, temperature)
        chosen = binary_operating_point(val_calibrated, val_labels, positive, MIN_SPECIFICITY)
        threshold = chosen["threshold"]
        called = calibrated[:, positive] >= threshold
        metrics["operating_point"] = {
            "positive_class": classes[positive],
            "threshold": threshold,
            "chosen_on": f"val split, specificity >= {MIN_SPECIFICITY}",
            "sensitivity": round(float(called[labels == positive].mean()), 4),
            "specificity": round(float((~called[labels != positive]).mean()), 4),
        }
        decision = {k: metrics["operating_point"][k] for k in ("positive_class", "threshold", "chosen_on")}
    if out_dir is not None:
        _write_outputs(Path(out_dir), metrics, probs, calibrated, labels, classes)
    if store:
        _store_test_metrics(model_path, bundle.metadata, metrics, temperature, decision)
    if store_external:
        _store_external_metrics(model_path, bundle.metadata, metrics, store_external, command)
    if not quiet:
        logger.info(format_summary(metrics))
    return metrics


def choose_referral(classifier, dataset: Dataset, classes: list[str], temperature: float, val_probs: np.ndarray,
                    val_labels: np.ndarray) -> dict[str, Any] | None:
    """The referral rule to store with a many-class model that has a diabetic retinopathy class:
    the threshold on calibrated p(DR) that refers MIN_SENSITIVITY of the val split's referable
    eyes (grade >= 2). None for other models and for data without grades."""
    from training.classifier.referral import (
        DR_CLASS,
        MIN_SENSITIVITY,
        REFERABLE_GRADE,
        chosen_on,
        referable_rows,
        referral_threshold,
    )

    if len(classes) < 3 or DR_CLASS not in classes:
        return None
    grades = grades_of(dataset.subset("val"))
    rows = referable_rows(val_labels, grades, classes)
    if not (grades[rows] >= REFERABLE_GRADE).any():
        return None
    p_dr = apply_temperature(val_probs, temperature)[rows, classes.index(DR_CLASS)]
    threshold = referral_threshold(p_dr, grades[rows] >= REFERABLE_GRADE, MIN_SENSITIVITY)
    return {"positive_class": DR_CLASS, "threshold": round(threshold, 4), "chosen_on": chosen_on(MIN_SENSITIVITY),
            "rule": "referral"}


def _heatmap_figure(classifier, images, calibrated, reported, count: int, quiet: bool) -> dict[str, Any]:
    """`heatmap_in_fov`, or why it could not be measured (the run's other figures still stand)."""
    try:
        return heatmap_in_fov(classifier, images, calibrated, reported, count, progress=not quiet)
    except ImportError as err:  # retina_desktop.imaging.fov not installed: say so rather than fail the run
        return {"skipped": f"no field-of-view finder ({err})"}
    except ValueError as err:  # a model Grad-CAM cannot explain
        return {"skipped": f"no heatmap for this model ({err})"}


def _write_outputs(out_dir: Path, metrics, probs, calibrated, labels, classes) -> None:
    with atomic_write(out_dir / "metrics.json") as handle:
        json.dump(metrics, handle, indent=2)
    from training.classifier.plots import plot_confusion, plot_reliability, plot_roc

    atomic_save(out_dir / "roc.png", lambda p: plot_roc(calibrated, labels, classes, p))
    atomic_save(out_dir / "confusion.png", lambda p: plot_confusion(metrics["confusion_matrix"], classes, p))
    atomic_save(out_dir / "reliability.png", lambda p: plot_reliability(probs, calibrated, labels, ECE_BINS, p))


def _store_test_metrics(model_path: Path, loaded, metrics: dict, temperature: float, decision: dict) -> None:
    """The model's own test figures, temperature and operating point into its sidecar; figures
    stored earlier on external data sets are kept."""
    sidecar = sidecar_path_for(model_path)
    metadata = read_sidecar(sidecar) or loaded
    external = metadata.metrics.get("external")
    metadata.temperature = round(temperature, 4)
    metadata.decision = decision
    metadata.metrics = {k: v for k, v in metrics.items() if k != "confusion_matrix"}
    metadata.metrics["confusion_matrix"] = metrics["confusion_matrix"]
    if external:
        metadata.metrics["external"] = external
    write_sidecar(sidecar, metadata)


def _store_external_metrics(model_path: Path, loaded, metrics: dict, name: str, command: str | None) -> None:
    """Figures on an external data set under `metrics["external"][name]`, with the command that
    measured them; temperature, operating point and test figures stay as they were."""
    sidecar = sidecar_path_for(model_path)
    metadata = read_sidecar(sidecar) or loaded
    entry = dict(metrics)
    entry["command"] = command or "?"
    metadata.metrics.setdefault("external", {})[name] = entry
    write_sidecar(sidecar, metadata)  # atomic: a crash leaves the old sidecar whole


def sensitivity_by_source(
    probs: np.ndarray, labels: np.ndarray, files: list[str], classes: list[str], sources: dict[str, str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{source: {class: {"n", "found", "sensitivity"}}} at the arg-max decision; a file matching
    no pattern counts as "other", and the first matching pattern wins."""
    origin = np.array(_origins_by_pattern(files, sources))
    predicted = probs.argmax(1)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for source in list(sources) + ["other"]:
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


def _fig(entry: dict, name: str) -> str:
    """"0.912 [0.871, 0.948]", or "n/a" for a figure that does not exist on this data."""
    value = entry.get(name)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    low, high = entry.get(f"{name}_ci") or [float("nan")] * 2
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_summary(metrics: dict[str, Any]) -> str:
    def fig(name: str, source: dict = metrics) -> str:
        return _fig(source, name)

    per_class = metrics["per_class"]
    lines = [
        f"{metrics['split']} split of {metrics['data']}: n = {metrics['n']} (95% bootstrap CIs)",
        f"  classes present: {', '.join(metrics.get('classes_present', per_class))}"
        " (macro figures are over these)",
        f"  accuracy           {fig('accuracy')}",
        f"  balanced accuracy  {fig('balanced_accuracy')}",
        f"  macro ROC AUC      {fig('macro_auc')}",
        f"  macro F1           {fig('macro_f1')}",
        f"  ECE                {metrics['ece']:.3f} after temperature scaling (T = {metrics['temperature']:.3f}),"
        f" {metrics['ece_uncalibrated']:.3f} before",
        f"  {'class':22s} {'n':>5s} {'sensitivity':>22s} {'specificity':>22s} {'AUC':>22s}",
    ]
    for cls, entry in per_class.items():
        lines.append(
            f"  {cls:22s} {entry['n']:5d} {fig('sensitivity', entry):>22s} {fig('specificity', entry):>22s}"
            f" {fig('auc', entry):>22s}"
        )
    if "operating_point" in metrics:
        op = metrics["operating_point"]
        lines.append(
            f"  {op['positive_class']} at the operating point chosen on the {op['chosen_on']}: "
            f"sensitivity {op['sensitivity']:.3f}, specificity {op['specificity']:.3f} "
            f"(threshold {op['threshold']:.3f})"
        )
    if "by_source" in metrics:
        lines.append("  sensitivity by source (found / n):")
        for source, entry in metrics["by_source"].items():
            cells = ", ".join(f"{cls} {e['found']}/{e['n']} ({e['sensitivity']:.2f})" for cls, e in entry.items())
            lines.append(f"    {source:14s} {cells}")
    if "referral" in metrics:
        rule = metrics["referral"]
        lines.append(f"  referral threshold {rule['threshold']:.3f} on p({rule['positive_class']}), chosen on "
                     f"{rule['chosen_on']}")
    lines += format_screening(metrics)
    lines += _format_versus_normal(metrics.get("versus_normal"))
    lines += _format_per_source(metrics.get("per_source"))
    for source, entry in (metrics.get("per_source") or {}).items():
        lines += format_screening(entry, source)
    lines += _format_heatmaps(metrics.get("heatmap_in_fov"))
    return "\n".join(lines)


def _format_versus_normal(versus: dict[str, Any] | None) -> list[str]:
    if not versus:
        return []
    healthy = versus["healthy_class"]
    lines = [
        "",
        f"  each disease against {healthy}, on the images of those two classes only (the app's answer):",
        f"  {'disease':22s} {'n':>9s} {'ROC AUC':>22s} {'sensitivity':>22s} {'referred':>22s}"
        f" {'specificity':>22s}",
    ]
    for disease, e in versus["diseases"].items():
        counts = f"{e['n_disease']}/{e['n_healthy']}"
        lines.append(
            f"  {disease:22s} {counts:>9s} {_fig(e, 'auc'):>22s} {_fig(e, 'sensitivity'):>22s}"
            f" {_fig(e, 'referred'):>22s} {_fig(e, 'specificity'):>22s}"
        )
    lines.append(
        f"  n = disease/{healthy} images; sensitivity: called that disease; referred: called anything but "
        f"{healthy}; specificity: {healthy} eyes called {healthy}"
    )
    return lines


def _format_per_source(table: dict[str, Any] | None) -> list[str]:
    if not table:
        return []
    lines = [
        "",
        "  per source (AUC one-vs-rest within the source; sensitivity: the app's answer):",
        f"  {'source':10s} {'class':22s} {'n':>5s} {'found':>5s} {'sensitivity':>22s} {'ROC AUC':>22s}",
    ]
    for source, entry in table.items():
        for cls, e in entry["classes"].items():
            lines.append(
                f"  {source:10s} {cls:22s} {e['n']:5d} {e['found']:5d} {_fig(e, 'sensitivity'):>22s}"
                f" {_fig(e, 'auc'):>22s}"
            )
        over = ", ".join(entry["macro_auc_over"]) or "no class with both positives and negatives"
        lines.append(
            f"  {source:10s} {'macro AUC':22s} {entry['n']:5d} {'':5s} {'':22s} {_fig(entry, 'macro_auc'):>22s}"
            f"  over {over}"
        )
    return lines


def _format_heatmaps(figure: dict[str, Any] | None) -> list[str]:
    if not figure:
        return []
    if "skipped" in figure:
        return ["", f"  heatmap mass inside the field of view: not measured, {figure['skipped']}"]
    if figure["median"] is None:
        summary = "no image measured"
    else:
        summary = f"median {figure['median']:.3f}, 10th percentile {figure['p10']:.3f}"
    return [
        "",
        f"  heatmap mass inside the field of view (Grad-CAM of the reported class): {summary} over "
        f"{figure['measured']} of {figure['images']} images (seed {figure['seed']}); skipped: "
        f"{figure['skipped_no_fov']} without a field of view found, {figure['skipped_empty_heatmap']} with an "
        f"empty heatmap; {figure['seconds_per_image'] or float('nan'):.3f} s per image (median)",
    ]


def parse_sources(items: Sequence[str] | None) -> dict[str, str] | None:
    """`--source NAME=REGEX` options as an ordered dict; a bad one is a usage error."""
    from retina_desktop.core.errors import UserError

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


def run_evaluate(options: EvaluateOptions) -> dict[str, Any]:
    """`evaluate`: judge `options.model` on a split of `options.data`; returns the metrics."""
    from retina_desktop.core.errors import UserError

    store_external = options.store_external
    if store_external is not None and options.store_temperature:
        raise UserError(
            "--store-external and --store-temperature do not go together: the model's temperature "
            "and test figures come from its own data set's splits, external figures sit beside them"
        )
    dataset = load_dataset(options.data)
    # A folder without a splits.csv is an external set (messidor2): judged whole, never split.
    split = options.split or ("test" if (Path(options.data) / "splits.csv").is_file() else "all")
    if store_external == "":  # the flag without a name: the data folder's name
        store_external = Path(options.data).resolve().name
    return evaluate_bundle(
        Path(options.model),
        dataset,
        split=split,
        out_dir=Path(options.out) if options.out else None,
        store=options.store_temperature,
        n_bootstrap=options.bootstrap,
        trust=options.trust_model,
        quiet=options.json,
        sources=parse_sources(options.source),
        healthy_class=options.normal_class,
        heatmaps=options.heatmaps,
        store_external=store_external,
        command="python -m training " + shlex.join(sys.argv[1:]),
    )
