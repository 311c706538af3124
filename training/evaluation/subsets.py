"""Figures on a subset of the images, because one in-distribution test split says little:

- each disease against the healthy class (`versus_healthy`), on the images of those two only,
  which is the question a screening clinic asks and the one an external data set holding a
  subset of the model's classes (say diabetic retinopathy and normal only) can answer;
- per source (`per_source`), from the splits.csv `source` column (or `--source` patterns): a
  model that scores well on one camera and poorly on another is a camera detector.

Each figure is the app's answer (`reported`) on those images, with a 95% bootstrap interval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.evaluation.config import HEALTHY_CLASS
from training.evaluation.metrics import bootstrap_figures, rank_auc


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
        return origins_by_pattern([sample.file for sample in samples], sources)
    return None


def origins_by_pattern(files: list[str], sources: dict[str, str]) -> list[str]:
    """The name of the first `sources` pattern each file matches, "other" where none does."""
    patterns = [(name, re.compile(pattern)) for name, pattern in sources.items()]
    return [next((name for name, rx in patterns if rx.search(f)), "other") for f in files]


def sensitivity_by_source(
    probs: np.ndarray, labels: np.ndarray, files: list[str], classes: list[str], sources: dict[str, str]
) -> dict[str, dict[str, dict[str, float]]]:
    """{source: {class: {"n", "found", "sensitivity"}}} at the arg-max decision; a file matching
    no pattern counts as "other", and the first matching pattern wins."""
    origin = np.array(origins_by_pattern(files, sources))
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
