"""One macro AUC (training/evaluation/metrics.py), equal to each of the three it replaced: the
trainer's (scikit-learn's one-vs-rest macro over every class), evaluate's (the mean over the
classes present) and the linear probe's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.evaluation.metrics import class_aucs, macro_auc


def _probs(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs.astype(np.float32)


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_it_equals_scikit_learns_one_vs_rest_macro_bit_for_bit(k, seed):
    labels, probs = _probs(60, k, seed)
    if k == 2:
        expected = roc_auc_score(labels, probs[:, 1])
    else:
        expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=list(range(k)))
    assert macro_auc(labels, probs, every_class=True) == float(expected)
    assert macro_auc(labels, probs) == float(expected)  # every class present: the same figure


def test_over_the_classes_present_a_missing_class_is_left_out():
    labels, probs = _probs(80, 4, 7)
    keep = labels != 2
    labels, probs = labels[keep], probs[keep]
    expected = np.mean([roc_auc_score(labels == c, probs[:, c]) for c in (0, 1, 3)])
    assert macro_auc(labels, probs) == float(expected)
    assert np.isnan(class_aucs(labels, probs)[2])


def test_with_every_class_a_missing_class_is_scikit_learns_to_judge():
    labels, probs = _probs(80, 3, 8)
    labels = np.where(labels == 2, 0, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=[0, 1, 2])
        except ValueError:  # older scikit-learn
            with pytest.raises(ValueError):
                macro_auc(labels, probs, every_class=True)
            return
        assert np.isnan(expected) and np.isnan(macro_auc(labels, probs, every_class=True))


def test_fewer_than_two_classes_present_have_no_macro_auc():
    labels, probs = _probs(20, 4, 9)
    assert np.isnan(macro_auc(np.zeros(20, int), probs))
    assert np.isnan(macro_auc(np.ones(20, int), probs[:, :2]))


def test_two_classes_report_the_second_class_auc_once():
    labels, probs = _probs(50, 2, 3)
    assert macro_auc(labels, probs) == float(roc_auc_score(labels == 1, probs[:, 1]))


def test_labels_beyond_the_probability_columns_are_refused():
    labels, probs = _probs(30, 3, 1)
    with pytest.raises(ValueError, match="columns"):
        macro_auc(labels, probs[:, :2])
