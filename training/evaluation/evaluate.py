"""The `evaluate` run: a classifier judged the way a clinician would read it, on data it never
trained on, into metrics.json, plots, the printed summary and (on request) its sidecar.

Metrics come from `metrics` (scikit-learn), each with a bootstrap 95% confidence interval
(resampling images, with a fixed seed). Calibration: expected calibration error (ECE) before and
after temperature scaling, the temperature fitted on the validation split. Generalisation is
judged on subsets (`subsets`: each disease against the healthy class, per source), on referable
disease (`referral`) and by where the heatmaps lie (`heatmaps`). The model is run through the
app's own service (`predictions`), so what is judged is exactly what a user gets.

Figures on an external data set can be stored in the model's sidecar under
`metrics["external"][name]`, beside (never in place of) the test-split figures (`sidecar`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.quiet import keras_backend
from retina_desktop.inference.calibration import apply_temperature
from training.datasets import Dataset, grades_of, load_dataset
from training.evaluation.config import HEALTHY_CLASS, EvaluateOptions
from training.evaluation.heatmaps import heatmap_figure
from training.evaluation.metrics import (
    ECE_BINS,
    MIN_SPECIFICITY,
    binary_operating_point,
    compute_metrics,
    expected_calibration_error,
    fit_temperature,
)
from training.evaluation.predictions import load_split, open_classifier, predict_samples, reported_labels
from training.evaluation.referral import screening_by_source, screening_figures
from training.evaluation.sidecar import store_external_metrics, store_test_metrics
from training.evaluation.subsets import parse_sources, per_source, sample_origins, sensitivity_by_source, versus_healthy
from training.evaluation.summary import format_summary

logger = logging.getLogger(__name__)


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
        metrics["heatmap_in_fov"] = heatmap_figure(classifier, images, calibrated, reported, heatmaps, quiet)
    decision = referral or {}
    if len(classes) == 2 and dataset.subset("val") and split != "val":
        # The operating point is chosen on validation and only then measured on `split`:
        # choosing it on the test split would flatter it.
        positive = _scarce_class(labels)
        val_calibrated = apply_temperature(val_probs, temperature)
        threshold = binary_operating_point(val_calibrated, val_labels, positive, MIN_SPECIFICITY).threshold
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
        store_test_metrics(model_path, bundle.metadata, metrics, temperature, decision)
    if store_external:
        store_external_metrics(model_path, bundle.metadata, metrics, store_external, command)
    if not quiet:
        logger.info(format_summary(metrics))
    return metrics


def choose_referral(classifier, dataset: Dataset, classes: list[str], temperature: float, val_probs: np.ndarray,
                    val_labels: np.ndarray) -> dict[str, Any] | None:
    """The referral rule to store with a many-class model that has a diabetic retinopathy class:
    the threshold on calibrated p(DR) that refers MIN_SENSITIVITY of the val split's referable
    eyes (grade >= 2). None for other models and for data without grades."""
    from training.evaluation.referral import (
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


def _write_outputs(out_dir: Path, metrics, probs, calibrated, labels, classes) -> None:
    """metrics.json and the plots (ROC, confusion matrix, reliability) into `out_dir`."""
    with atomic_write(out_dir / "metrics.json") as handle:
        json.dump(metrics, handle, indent=2)
    from training.evaluation.plots import plot_confusion, plot_reliability, plot_roc

    atomic_save(out_dir / "roc.png", lambda p: plot_roc(calibrated, labels, classes, p))
    atomic_save(out_dir / "confusion.png", lambda p: plot_confusion(metrics["confusion_matrix"], classes, p))
    atomic_save(out_dir / "reliability.png", lambda p: plot_reliability(probs, calibrated, labels, ECE_BINS, p))


def _scarce_class(labels: np.ndarray) -> int:
    """A two-class set's rarer class: the one the operating point is chosen for."""
    counts = np.bincount(labels, minlength=2)
    return int(np.argmin(counts))


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
