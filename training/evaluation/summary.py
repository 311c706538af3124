"""The metrics object as the text summary `evaluate` prints: figures with their 95% intervals
in fixed-width columns, a section per kind of figure present."""

from __future__ import annotations

from typing import Any

import numpy as np

from training.evaluation.referral import format_screening


def _fig(entry: dict, name: str) -> str:
    """"0.912 [0.871, 0.948]", or "n/a" for a figure that does not exist on this data."""
    value = entry.get(name)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    low, high = entry.get(f"{name}_ci") or [float("nan")] * 2
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_summary(metrics: dict[str, Any]) -> str:
    """The lines `evaluate` prints: the headline figures, per class, then each section present."""
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
