"""Model cards are rendered from the sidecar's measured figures, never typed by hand."""

from __future__ import annotations

import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.inference.model_files import write_sidecar
from training.classifier.model_card import render_card


def test_card_carries_the_sidecar_figures(tmp_path):
    model = tmp_path / "keras_model.h5"
    metrics = {"split": "test", "n": 10, "accuracy": 0.9, "accuracy_ci": [0.8, 0.97], "balanced_accuracy": 0.85,
               "macro_auc": 0.93, "macro_f1": 0.8, "ece": 0.03, "ece_uncalibrated": 0.07,
               "per_class": {"a": {"n": 5, "sensitivity": 0.8, "sensitivity_ci": [0.5, 1.0]}},
               "confusion_matrix": [[4, 1], [0, 5]]}
    checks = {"thresholds": {"min_side": 128}, "report": {
        "fitted_on": "val", "real_test_flagged": 0.02, "real_test_n": 50, "non_retinal_flagged": 0.99,
        "non_retinal_n": 100, "real_test_reasons": {"too dark to judge": 1}, "ms_per_image": 2.0}}
    write_sidecar(model.with_suffix(".json"), ModelMetadata(
        classes=["a", "b"], input=InputSpec(32, 32, "crop", "none"), modality="fundus", name="m",
        provenance={"command": "python -m training classify --data X", "data": "X"}, metrics=metrics, checks=checks))
    card = render_card(model, "teaching", ["small data"])
    assert "not a medical device" in card.lower()
    assert "| accuracy | 0.900 [0.800, 0.970] |" in card
    assert "python -m training classify --data X" in card
    assert "| real test images of this model's data (should pass) | 50 | 2.0% |" in card
    assert "- small data" in card


def test_a_model_without_sidecar_has_no_card(tmp_path):
    with pytest.raises(UserError, match="no sidecar"):
        render_card(tmp_path / "keras_model.h5", "x", [])


def test_card_renders_external_and_per_source_tables(tmp_path):
    model = tmp_path / "keras_model.h5"
    versus = {"healthy_class": "normal", "diseases": {"dr": {
        "n_disease": 70, "n_healthy": 214, "auc": 0.21, "auc_ci": [0.15, 0.28], "sensitivity": 0.9,
        "sensitivity_ci": [0.8, 0.96], "referred": 0.95, "referred_ci": [0.9, 1.0], "specificity": 0.05,
        "specificity_ci": [0.02, 0.08]}}}
    per_source = {"odir": {"n": 6, "macro_auc": 0.875, "macro_auc_ci": [0.6, 1.0], "macro_auc_over": ["dr", "normal"],
                           "classes": {"dr": {"n": 2, "found": 1, "sensitivity": 0.5, "sensitivity_ci": [0.0, 1.0],
                                              "auc": 0.875, "auc_ci": [0.5, 1.0]}}},
                  "small": {"n": 3, "macro_auc": None, "macro_auc_ci": None, "macro_auc_over": [],
                            "classes": {"dr": {"n": 3, "found": 3, "sensitivity": 1.0, "sensitivity_ci": [1.0, 1.0],
                                               "auc": None, "auc_ci": None}}}}
    metrics = {"split": "test", "n": 9, "per_source": per_source,
               "heatmap_in_fov": {"images": 200, "measured": 190, "skipped_no_fov": 10, "median": 0.97, "p10": 0.8},
               "external": {"fundus-external": {
                   "n": 284, "classes_present": ["dr", "normal"], "balanced_accuracy": 0.5,
                   "balanced_accuracy_ci": [0.45, 0.55], "macro_auc": 0.3, "macro_auc_ci": [0.2, 0.4],
                   "versus_normal": versus, "command": "python -m training evaluate --data EXT --store-external"}}}
    write_sidecar(model.with_suffix(".json"), ModelMetadata(
        classes=["dr", "normal"], input=InputSpec(32, 32, "crop", "none"), modality="fundus", name="m",
        metrics=metrics))
    card = render_card(model, "teaching", [])
    assert "## External data" in card
    assert "| fundus-external | 284 | dr, normal | 0.500 [0.450, 0.550] | 0.300 [0.200, 0.400] |" in card
    assert ("| fundus-external | dr vs normal | 70 / 214 | 0.210 [0.150, 0.280] | 0.900 [0.800, 0.960] | "
            "0.950 [0.900, 1.000] | 0.050 [0.020, 0.080] |") in card
    assert "python -m training evaluate --data EXT --store-external" in card
    assert "## Per source" in card
    assert "| odir | dr | 2 | 0.500 [0.000, 1.000] | 0.875 [0.500, 1.000] |" in card
    assert "| small | dr | 3 | 1.000 [1.000, 1.000] | n/a |" in card
    assert "| small | macro (over none) | 3 | | n/a |" in card
    assert "median 0.970, 10th percentile 0.800, over 190 of 200 test images" in card
