"""The `card` verb: a markdown model card rendered from a model's sidecar.

Figures are copied from the sidecar that `classify`/`evaluate` wrote, never typed by hand, so a
card always says what was measured and by which command.
"""

from __future__ import annotations

from pathlib import Path

from retina_desktop.atomic import atomic_write
from retina_desktop.errors import UserError
from retina_desktop.model_files import read_sidecar, sidecar_path_for

NOTICE = (
    "**Not a medical device.** This model's output is not a diagnosis. It was trained on public "
    "research images (several data sets are licensed for research use only) and has not been "
    "clinically validated; it must not be used to make or replace clinical decisions."
)


def _ci(entry: dict, name: str) -> str:
    value = entry.get(name)
    if value is None:
        return "n/a"
    low, high = entry.get(f"{name}_ci", [None, None])
    return f"{value:.3f} [{low:.3f}, {high:.3f}]" if low is not None else f"{value:.3f}"


def render_card(model_path: Path, intended_use: str, limitations: list[str]) -> str:
    metadata = read_sidecar(sidecar_path_for(model_path))
    if metadata is None:
        raise UserError(f'"{model_path}" has no sidecar with metrics: run `python -m training evaluate --store-temperature` first')
    m, p = metadata.metrics, metadata.provenance
    config = p.get("config", {})
    spec = metadata.input
    lines = [
        f"# Model card: {metadata.name}",
        "",
        NOTICE,
        "",
        "## Intended use",
        "",
        intended_use,
        "",
        "## Model",
        "",
        f"- File: `{model_path}` (+ `labels.txt`, sidecar `{sidecar_path_for(model_path).name}`), version {metadata.version}",
        f"- Modality: {metadata.modality}; classes: {', '.join(metadata.classes)}",
        f"- Input: {spec.width} x {spec.height} RGB, fitted by `{spec.fit}`, pixel scaling inside the network",
        f"- Architecture: `{config.get('architecture', '?')}` (width multiplier {config.get('width_multiplier', 1)}), "
        f"trained from scratch; seed {config.get('seed', '?')}",
        f"- Training: {p.get('epochs_trained', '?')} epochs (best epoch {p.get('best_epoch', '?')}), "
        f"{p.get('training_seconds', 0) / 60:.1f} min on {p.get('trained_on', '?')} (2-core CPU)",
        f"- Calibration: temperature {metadata.temperature:g}, fitted on the validation split",
        "",
        "## Data",
        "",
        f"- `{p.get('data', '?')}`, patient-grouped `splits.csv` (sha256 `{p.get('splits_sha256', '?')[:16]}...`):",
        "  train for fitting, val for early stopping and temperature, test untouched until evaluation.",
        "",
        "## How it was made",
        "",
        "```bash",
        p.get("command", "?"),
        f"python -m training evaluate --model {model_path} --data {p.get('data', 'DATA')} --split test",
        "```",
        "",
        f"## Metrics on the untouched {m.get('split', 'test')} split (n = {m.get('n', '?')}, 95% bootstrap CIs)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| accuracy | {_ci(m, 'accuracy')} |",
        f"| balanced accuracy | {_ci(m, 'balanced_accuracy')} |",
        f"| macro ROC AUC | {_ci(m, 'macro_auc')} |",
        f"| macro F1 | {_ci(m, 'macro_f1')} |",
        f"| expected calibration error | {m.get('ece', float('nan')):.3f} after temperature scaling ({m.get('ece_uncalibrated', float('nan')):.3f} before) |",
        "",
        "| class | n | sensitivity | specificity | precision | F1 | ROC AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in m.get("per_class", {}).items():
        lines.append(
            f"| {name} | {entry.get('n', '?')} | {_ci(entry, 'sensitivity')} | {_ci(entry, 'specificity')} | "
            f"{_ci(entry, 'precision')} | {_ci(entry, 'f1')} | {_ci(entry, 'auc')} |"
        )
    if "operating_point" in m:
        op = m["operating_point"]
        lines += [
            "",
            f"Operating point for {op['positive_class']}, chosen on the {op.get('chosen_on', 'val split')} and "
            f"measured here: sensitivity {op['sensitivity']:.3f}, specificity {op['specificity']:.3f} "
            f"(probability threshold {op['threshold']:.3f}). The app reports {op['positive_class']} when its "
            "calibrated probability reaches this threshold; the table above uses the larger probability.",
        ]
    matrix = m.get("confusion_matrix")
    if matrix:
        lines += ["", "Confusion matrix (rows: reference label, columns: model output):", "",
                  "| | " + " | ".join(metadata.classes) + " |", "|---|" + "---|" * len(metadata.classes)]
        lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(metadata.classes, matrix)]
    lines += _checks_section(metadata.checks, str(model_path), p.get("data", "DATA"))
    lines += ["", "## Known limitations", ""] + [f"- {item}" for item in limitations] + [""]
    return "\n".join(lines)


def _checks_section(checks: dict, model_path: str, data: str) -> list[str]:
    report = checks.get("report")
    if not report:
        return []
    t = checks.get("thresholds", {})
    lines = [
        "",
        "## Image checks (when the model does not answer)",
        "",
        f"Thresholds fitted on the {report['fitted_on']}: "
        + ", ".join(f"{k} {v:g}" for k, v in t.items()) + ".",
        "",
        "| images | n | flagged |",
        "|---|---|---|",
        f"| real test images of this model's data (should pass) | {report['real_test_n']} | {report['real_test_flagged']:.1%} |",
        f"| non-retinal images from unseen sources (should be flagged) | {report['non_retinal_n']} | {report['non_retinal_flagged']:.1%} |",
    ]
    if "other_modality_n" in report:
        lines.append(
            f"| test images of the other modality (should be flagged) | {report['other_modality_n']} | "
            f"{report['other_modality_flagged']:.1%} |"
        )
    reasons = ", ".join(f"{k} {v}" for k, v in report.get("real_test_reasons", {}).items()) or "none"
    other = f" --other-modality {report['other_modality_data']}" if "other_modality_data" in report else ""
    lines += [
        "",
        f"Reasons among flagged real test images: {reasons}. Checks add {report.get('ms_per_image', float('nan')):.1f} ms "
        "per image (median, on the Keras path, by the command below; `benchmarks/predict_latency.py` "
        "measures the app's compiled path).",
        "",
        "```bash",
        f"python -m training fit-checks --model {model_path} --data {data}{other}",
        "```",
    ]
    return lines


def run_card(args) -> int:
    limitations = [line.strip() for line in (args.limitation or [])]
    text = render_card(Path(args.model), args.intended_use, limitations)
    with atomic_write(args.out, encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {args.out}")
    return 0
