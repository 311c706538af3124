"""The screening model's head: a logistic regression on frozen pooled features, fitted with
grade-aware weights and chosen on the validation split.

Owns the head and the rule that picks it. Why a linear head on frozen features: on cameras the
model never saw, the frozen ImageNet features of EfficientNet-Lite carried diabetic retinopathy
better than either fine-tune (issue #33's table: messidor2 referable-DR AUC 0.710 frozen against
0.633 and 0.662 fine-tuned), and a head is fitted in seconds, so class weights, grade weights and
the regularisation are chosen on validation rather than guessed.

"Learn the grade, not only the word": fundus4's diabetic retinopathy class holds grade 1 eyes
(a few microaneurysms) beside referable ones. `grade_weights` lets referable eyes (grade >= 2)
count more in the fit and mild ones less, so that p(diabetic retinopathy) ranks what a screening
programme refers; eyes without a grade keep weight 1.

"No false glaucoma": the regression is fitted with balanced class weights, so that scarce
classes shape the features' directions, but balanced weights also tell it that a quarter of all
eyes have glaucoma. Healthy eyes were then called glaucoma 9% of the time on the test split (12%
of ODIR's). With `prior="train"` the fitted logits are shifted by the log of the training split's
class shares (logit adjustment, Menon et al. 2021, run backwards): the probabilities are
posteriors at the prevalence the model was trained on, and the shift is folded into the Dense
layer's bias. The referral decision does not depend on it (its threshold is chosen on the
shifted p(DR)); what changes is which class a healthy eye gets when it is not referred.

The selection score on validation is the mean of the macro AUC over the four classes and the
referable-DR AUC on the graded eyes: the app answers all four classes, and screens for one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HeadChoice:
    """One head's settings: the pools it reads, the L2 strength and the weight of grade 2+
    and grade 1 diabetic retinopathy eyes (relative to 1 for every other eye)."""

    pools: tuple[str, ...] = ("pool",)
    C: float = 0.003
    referable_weight: float = 1.0
    mild_weight: float = 1.0
    prior: str = "train"  # "train": posteriors at the training split's class shares; "balanced": equal

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FittedHead:
    """A fitted head: multinomial coefficients on standardised features, and how to undo the
    standardisation (`dense_weights` folds it into one Dense layer)."""

    choice: HeadChoice
    regression: object
    mean: np.ndarray
    scale: np.ndarray
    log_prior: np.ndarray  # added to the logits (zeros for "balanced")

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(classes, d) coefficients and (classes,) intercepts on standardised features. A
        two-class regression holds one row, the second class's logit against the first's: a
        softmax over (0, that logit) is its sigmoid."""
        coef, intercept = self.regression.coef_, self.regression.intercept_
        if coef.shape[0] == 1:
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
        return coef, intercept

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        coef, intercept = self.coefficients()
        logits = ((features - self.mean) / self.scale) @ coef.T + intercept + self.log_prior
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def dense_weights(self) -> list[np.ndarray]:
        """[kernel, bias] of one Dense softmax layer on raw features that equals `probabilities`."""
        coef, intercept = self.coefficients()
        kernel = (coef / self.scale).T
        bias = intercept - (coef / self.scale) @ self.mean + self.log_prior
        return [kernel.astype("float32"), bias.astype("float32")]


def grade_weights(labels: np.ndarray, grades: np.ndarray, dr: int | None, choice: HeadChoice) -> np.ndarray:
    """Per-eye weights: balanced over classes, times the grade weight of a DR eye."""
    counts = np.bincount(labels)
    weights = (len(labels) / (len(counts) * np.maximum(counts, 1)))[labels]
    if dr is not None:
        is_dr = labels == dr
        weights = np.where(is_dr & (grades >= 2), weights * choice.referable_weight, weights)
        weights = np.where(is_dr & (grades == 1), weights * choice.mild_weight, weights)
    return weights


def fit_head(features: np.ndarray, labels: np.ndarray, grades: np.ndarray, dr: int | None, choice: HeadChoice,
             seed: int = 0, max_iter: int = 3000) -> FittedHead:
    """The multinomial logistic regression of `choice` on standardised `features`."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    present = np.unique(labels)
    if len(present) < 2 or len(present) != labels.max() + 1:
        raise ValueError("the screening head needs two or more classes, each with training images")
    mean = features.mean(axis=0).astype(np.float64)
    scale = features.std(axis=0).astype(np.float64)
    scale[scale < 1e-12] = 1.0  # a feature constant on train carries nothing; keep it finite
    regression = LogisticRegression(C=choice.C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported by n_iter_ in the run's record
        regression.fit((features - mean) / scale, labels, sample_weight=grade_weights(labels, grades, dr, choice))
    shares = np.bincount(labels) / len(labels)
    log_prior = np.log(shares) if choice.prior == "train" else np.zeros(len(shares))
    return FittedHead(choice, regression, mean, scale, log_prior)


def selection_score(probs: np.ndarray, labels: np.ndarray, grades: np.ndarray, classes: list[str]) -> dict[str, float]:
    """{"macro_auc", "referable_auc", "score"} on one set: the score the head is chosen by."""
    from training.evaluation.metrics import rank_auc
    from training.evaluation.referral import DR_CLASS, REFERABLE_GRADE, referable_rows

    present = [c for c in range(len(classes)) if 0 < (labels == c).sum() < len(labels)]
    macro = float(np.mean([rank_auc(labels == c, probs[:, c]) for c in present]))
    out = {"macro_auc": macro}
    if DR_CLASS in classes:
        rows = referable_rows(labels, grades, classes)
        out["referable_auc"] = rank_auc(grades[rows] >= REFERABLE_GRADE, probs[rows, classes.index(DR_CLASS)])
    scores = [v for v in out.values() if not np.isnan(v)]
    out["score"] = float(np.mean(scores))
    return out
