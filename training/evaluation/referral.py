"""Screening figures: referable diabetic retinopathy, the referral threshold, and what healthy
eyes are called.

A screening programme refers moderate or worse retinopathy (ICDR grade >= 2); an argmax over
four classes is not a referral rule. This module owns:

- `referral_threshold`: the threshold on p(diabetic retinopathy), chosen on the validation split
  so that at least `min_sensitivity` of its referable eyes are referred (IDx-DR's pivotal trial
  fixed its sensitivity endpoint in advance the same way);
- `screening_figures`: on a set with grades, referable DR against the rest (grade 0-1 and normal
  eyes) as ROC AUC of p(DR), referable eyes referred, grade-0 and grade 0-1 eyes not referred;
  on any set with healthy eyes, the share of them called each class (a healthy eye called
  glaucoma is a harm of its own); each with a 95% bootstrap interval, and per source.

Eyes without a grade (glaucoma, cataract, ODIR's unstaged DR eyes) are left out of the
referable-DR figures, never counted as negatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from training.datasets import UNGRADED
from training.evaluation.config import HEALTHY_CLASS
from training.evaluation.metrics import bootstrap_figures, rank_auc

DR_CLASS = "diabetic_retinopathy"
REFERABLE_GRADE = 2
MIN_SENSITIVITY = 0.9


def chosen_on(min_sensitivity: float = MIN_SENSITIVITY) -> str:
    """How a referral threshold was chosen, as the answer and the card say it."""
    return f"val split, referable DR sensitivity >= {min_sensitivity:g}"


def referral_threshold(p_dr: np.ndarray, referable: np.ndarray, min_sensitivity: float = MIN_SENSITIVITY) -> float:
    """The largest threshold t on p(DR) with at least `min_sensitivity` of the referable eyes at
    or above t: as many healthy eyes left unreferred as that sensitivity allows."""
    scores = np.sort(np.asarray(p_dr, dtype=np.float64)[np.asarray(referable, dtype=bool)])
    if not len(scores):
        raise ValueError("no referable eyes (grade >= 2) to choose a referral threshold on")
    # Keep the top ceil(s * n) referable scores at or above t.
    keep = int(np.ceil(min_sensitivity * len(scores) - 1e-9))
    return float(scores[len(scores) - keep]) if keep else 1.0


def referable_rows(labels: np.ndarray, grades: np.ndarray, classes: list[str]) -> np.ndarray:
    """Rows that take part in the referable-DR figures: graded eyes of the DR and healthy classes."""
    mask = np.asarray(grades) != UNGRADED
    wanted = [classes.index(c) for c in (DR_CLASS, HEALTHY_CLASS) if c in classes]
    return mask & np.isin(labels, wanted)


def screening_figures(
    probs: np.ndarray,
    labels: np.ndarray,
    reported: np.ndarray,
    grades: np.ndarray,
    classes: list[str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """{"referable_dr": ..., "healthy_called": ...} for one set (either may be absent).

    `probs`: calibrated probabilities; `reported`: the class index the app reports (so the
    referral rule stored with the model is what is judged); `grades`: ICDR grade or -1."""
    out: dict[str, Any] = {}
    if DR_CLASS in classes:
        dr = classes.index(DR_CLASS)
        rows = referable_rows(labels, grades, classes)
        grade, p_dr, refer = np.asarray(grades)[rows], probs[rows, dr], np.asarray(reported)[rows] == dr
        positive = grade >= REFERABLE_GRADE
        if positive.any() and (~positive).any():

            def figures(idx: np.ndarray) -> dict[str, float]:
                pos, g, r = positive[idx], grade[idx], refer[idx]
                return {
                    "auc": rank_auc(pos, p_dr[idx]),
                    "referred": float(np.mean(r[pos])) if pos.any() else np.nan,
                    "grade0_not_referred": float(np.mean(~r[g == 0])) if (g == 0).any() else np.nan,
                    "grade01_not_referred": float(np.mean(~r[~pos])) if (~pos).any() else np.nan,
                }

            entry = {"n_referable": int(positive.sum()), "n_not_referable": int((~positive).sum()),
                     "n_grade0": int((grade == 0).sum())}
            entry.update(bootstrap_figures(figures, len(grade), n_bootstrap=n_bootstrap, seed=seed))
            out["referable_dr"] = entry
    if HEALTHY_CLASS in classes and (labels == classes.index(HEALTHY_CLASS)).any():
        healthy = labels == classes.index(HEALTHY_CLASS)
        said = np.asarray(reported)[healthy]
        out["healthy_called"] = {"n": int(healthy.sum()),
                                 **{name: round(float(np.mean(said == c)), 4) for c, name in enumerate(classes)}}
    return out


def screening_by_source(probs, labels, reported, grades, origins, classes, *, n_bootstrap: int = 1000,
                        seed: int = 0) -> dict[str, dict[str, Any]]:
    """`screening_figures` per source (sources in name order), leaving out sources with neither figure."""
    origins = np.asarray(origins)
    table = {}
    for source in sorted(set(origins.tolist())):
        mask = origins == source
        figures = screening_figures(probs[mask], labels[mask], np.asarray(reported)[mask], np.asarray(grades)[mask],
                                    classes, n_bootstrap=n_bootstrap, seed=seed)
        if figures:
            table[source] = figures
    return table


def format_screening(figures: dict[str, Any], name: str = "") -> list[str]:
    """The screening figures as summary lines."""
    lines = []
    where = f" ({name})" if name else ""
    ref = figures.get("referable_dr")
    if ref:
        def fig(key: str) -> str:
            value, ci = ref.get(key), ref.get(f"{key}_ci")
            if value is None:
                return "n/a"
            return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

        lines.append(
            f"  referable DR{where} ({ref['n_referable']} referable, {ref['n_not_referable']} grade 0-1): "
            f"AUC {fig('auc')}, referred {fig('referred')}, grade 0 not referred {fig('grade0_not_referred')}"
        )
    healthy = figures.get("healthy_called")
    if healthy:
        calls = ", ".join(f"{k} {v:.1%}" for k, v in healthy.items() if k != "n")
        lines.append(f"  healthy eyes{where} (n = {healthy['n']}) called: {calls}")
    return lines
