"""The comparison table: figures from evaluate's metrics, seeds as mean ± spread."""

from __future__ import annotations

import json

import pytest

from retina_desktop.core.errors import UserError
from training.experiments.compare import render_table, row_figures, run_compare


def metrics(macro: float, dr_external: float | None = None) -> dict:
    test = {
        "macro_auc": macro,
        "ece": 0.04,
        "per_class": {"diabetic_retinopathy": {"auc": macro - 0.1}, "glaucoma": {"auc": 0.9}},
        "per_source": {"odir": {"macro_auc": macro, "classes": {"normal": {"auc": 0.7}, "glaucoma": {"auc": 0.85}}}},
    }
    external = None
    if dr_external is not None:
        external = {"per_class": {}, "versus_normal": {"diseases": {"diabetic_retinopathy": {
            "auc": dr_external, "sensitivity": 0.8, "specificity": 0.9}}}, "heatmap_in_fov": {"median": 0.95}}
    return test, external


def test_a_row_takes_the_worst_class_of_any_source_and_the_external_figures():
    figures = row_figures(*metrics(0.9, 0.85))
    assert figures["lowest class AUC in a source"] == 0.7
    assert figures["external DR vs normal AUC"] == 0.85 and figures["external healthy called normal"] == 0.9
    assert figures["eyepacs macro AUC"] is None


def test_seeds_are_shown_as_mean_and_spread_and_missing_figures_as_a_dash():
    table = render_table([("fine-tune", [metrics(0.90, 0.80), metrics(0.92, 0.84)]), ("old", [metrics(0.7)])])
    assert "| fine-tune (2 seeds) | old |" in table
    assert "| test macro AUC | 0.910 ± 0.014 | 0.700 |" in table
    assert "| external DR vs normal AUC | 0.820 ± 0.028 | – |" in table


def test_a_file_that_is_not_evaluate_output_is_named(tmp_path):
    bad = tmp_path / "metrics.json"
    bad.write_text(json.dumps([1, 2]))

    class Args:
        row = [["x", str(bad)]]
        out = None

    with pytest.raises(UserError, match="metrics.json"):
        run_compare(Args())
    Args.row = [["x", str(tmp_path / "missing.json")]]
    with pytest.raises(UserError, match="not found"):
        run_compare(Args())
