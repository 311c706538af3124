"""Bootstrap intervals and a fast ROC AUC: the statistics every evaluation figure is made of.

Numpy and scipy only, imported by `evaluate` and `referral` alike (neither imports the other's
figures through here), so that screening figures and the evaluation report share one of each.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


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
