"""The `card` verb: a markdown model card rendered from a model's sidecar.

Figures are copied from the sidecar that `classify`/`evaluate` wrote, never typed by hand, so a
card always says what was measured and by which command: the test split's figures, each disease
against normal, per source, the heatmap mass inside the field of view, and the figures on
external data sets that `evaluate --store-external` stored under `metrics["external"]`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.inference.model_files import read_sidecar, sidecar_path_for
from training.classifier.config import CardOptions
from training.classifier.wrong_inputs import FUNDUS_KINDS
from training.evaluation.tables import markdown_table

logger = logging.getLogger(__name__)

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
        raise UserError(
            f'"{model_path}" has no sidecar with metrics: run `python -m training evaluate --store-temperature` first'
        )
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
        f"- File: `{model_path}` (+ `labels.txt`, sidecar `{sidecar_path_for(model_path).name}`), "
        f"version {metadata.version}",
        f"- Modality: {metadata.modality}; classes: {', '.join(metadata.classes)}",
        f"- Input: {spec.width} x {spec.height} RGB, fitted by `{spec.fit}`, pixel scaling inside the network",
        f"- Architecture: `{config.get('architecture', '?')}` ({_origin(config)}); seed {config.get('seed', '?')}",
        (f"- Training: {p['method']}; features {p.get('feature_seconds', 0) / 60:.1f} min, head "
         f"{p.get('training_seconds', 0) / 60:.1f} min on {p.get('trained_on', '?')} (2-core CPU)"
         if "method" in p else
         f"- Training: {p.get('epochs_trained', '?')} epochs (best epoch {p.get('best_epoch', '?')}), "
         f"{p.get('training_seconds', 0) / 60:.1f} min on {p.get('trained_on', '?')} (2-core CPU)"),
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
        markdown_table(["metric", "value"], [
            ["accuracy", _ci(m, "accuracy")],
            ["balanced accuracy", _ci(m, "balanced_accuracy")],
            ["macro ROC AUC", _ci(m, "macro_auc")],
            ["macro F1", _ci(m, "macro_f1")],
            ["expected calibration error", f"{m.get('ece', float('nan')):.3f} after temperature scaling "
             f"({m.get('ece_uncalibrated', float('nan')):.3f} before)"],
        ]),
        "",
        markdown_table(
            ["class", "n", "sensitivity", "specificity", "precision", "F1", "ROC AUC"],
            [[name, entry.get("n", "?"), _ci(entry, "sensitivity"), _ci(entry, "specificity"),
              _ci(entry, "precision"), _ci(entry, "f1"), _ci(entry, "auc")]
             for name, entry in m.get("per_class", {}).items()],
        ),
    ]
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
                  markdown_table([None, *metadata.classes],
                                 [[name, *row] for name, row in zip(metadata.classes, matrix)])]
    lines += _heatmap_lines(m.get("heatmap_in_fov"))
    lines += _screening_section(metadata, m, p)
    lines += _versus_section(
        f"Each disease against {m.get('versus_normal', {}).get('healthy_class', 'normal')} on the test split", m)
    lines += _per_source_section(m.get("per_source"))
    lines += _external_section(m.get("external"))
    lines += _checks_section(metadata.checks, str(model_path), p.get("data", "DATA"))
    lines += _familiarity_section(metadata.familiarity)
    lines += ["", "## Known limitations", ""] + [f"- {item}" for item in limitations] + [""]
    return "\n".join(lines)


def _screening_rows(name: str, m: dict) -> list[list[str]]:
    ref, healthy = m.get("referable_dr"), m.get("healthy_called")
    if not ref and not healthy:
        return []
    ref = ref or {}
    healthy = healthy or {}

    def share(key: str) -> str:
        return "" if key not in healthy else f"{healthy[key]:.1%}"

    counts = f"{ref['n_referable']} / {ref['n_grade0']}" if ref else ""
    figures = [_ci(ref, key) if ref else "" for key in ("auc", "referred", "grade0_not_referred")]
    return [[name, counts, *figures, healthy.get("n", ""), share("normal"), share("diabetic_retinopathy"),
             share("glaucoma"), share("cataract")]]


def _screening_section(metadata, m: dict, provenance: dict) -> list[str]:
    """Referable diabetic retinopathy at the referral threshold, and what healthy eyes are called:
    on the test split, per source, and on each external set."""
    point = metadata.operating_point()
    rows = _screening_rows(f"{m.get('split', 'test')} split", m)
    for source, entry in (m.get("per_source") or {}).items():
        rows += _screening_rows(f"test: {source}", entry)
    for name, entry in (m.get("external") or {}).items():
        rows += _screening_rows(f"external: {name}", entry)
    if not rows:
        return []
    rule = (f"The app refers diabetic retinopathy when calibrated p({point.positive_class}) reaches "
            f"{point.threshold:g} ({point.chosen_on}), even when another class is more probable; below it, "
            "the most probable other class." if point is not None and point.referral else
            "The model has no referral threshold: the figures are at the most probable class.")
    lines = [
        "",
        "## Screening: referable diabetic retinopathy and healthy eyes (95% bootstrap CIs)",
        "",
        rule + " Referable: ICDR grade 2 or worse, against grade 0-1 eyes of the diabetic retinopathy and "
        "normal classes (ungraded eyes left out). Healthy eyes: the normal class, and what the app calls them.",
        "",
        markdown_table(["data", "referable / grade-0 eyes", "referable-DR AUC", "referable referred",
                        "grade 0 not referred", "healthy eyes", "called normal", "called DR", "called glaucoma",
                        "called cataract"], rows),
    ]
    held = (provenance.get("held_out_cameras") or {}).get("by_source")
    if held:
        lines += ["", "Held-out cameras (the head refitted without one source, judged on that source's train and "
                  "val eyes; training data only): " + "; ".join(
                      f"{name} referable-DR AUC {e['referable_auc']:.3f}, DR vs normal {e['dr_auc']:.3f}"
                      for name, e in held.items()) + "."]
    return lines


def _heatmap_lines(figure: dict | None) -> list[str]:
    if not figure or figure.get("median") is None:
        return []
    return [
        "",
        f"Heatmap mass inside the fundus field of view (Grad-CAM of the reported class): median "
        f"{figure['median']:.3f}, 10th percentile {figure['p10']:.3f}, over {figure['measured']} of "
        f"{figure['images']} test images ({figure.get('skipped_no_fov', 0)} skipped: no field of view found). "
        "Mass outside it is evidence taken from the frame or the border, a shortcut.",
    ]


def _versus_rows(name: str, versus: dict) -> list[list[str]]:
    return [
        [name, f"{disease} vs {versus['healthy_class']}", f"{e['n_disease']} / {e['n_healthy']}",
         _ci(e, "auc"), _ci(e, "sensitivity"), _ci(e, "referred"), _ci(e, "specificity")]
        for disease, e in versus.get("diseases", {}).items()
    ]


def _versus_table(rows: list[list[str]]) -> str:
    return markdown_table(["data", "comparison", "n (disease / healthy)", "ROC AUC", "sensitivity", "referred",
                           "specificity"], rows)


VERSUS_NOTE = (
    "On the images of the two classes only. Sensitivity: disease images the app calls that disease; "
    "referred: called anything but healthy; specificity: healthy eyes called healthy."
)


def _versus_section(title: str, m: dict) -> list[str]:
    versus = m.get("versus_normal")
    if not versus:
        return []
    return ["", f"## {title} (95% bootstrap CIs)", "", VERSUS_NOTE, "",
            _versus_table(_versus_rows(f"{m.get('split', 'test')} split", versus))]


def _per_source_section(table: dict | None) -> list[str]:
    """Test-split figures per source (camera or public data set), from the splits.csv column."""
    if not table:
        return []
    lines = [
        "",
        "## Per source (test split, 95% bootstrap CIs)",
        "",
        "ROC AUC is one-vs-rest within the source, for classes the source holds together with others; "
        "the macro AUC averages those. A class that scores well on one source only is partly told by its camera.",
        "",
    ]
    rows = []
    for source, entry in table.items():
        rows += [[source, name, e["n"], _ci(e, "sensitivity"), _ci(e, "auc")]
                 for name, e in entry.get("classes", {}).items()]
        over = ", ".join(entry.get("macro_auc_over", [])) or "none"
        rows.append([source, f"macro (over {over})", entry["n"], None, _ci(entry, "macro_auc")])
    return [*lines, markdown_table(["source", "class", "n", "sensitivity", "ROC AUC"], rows)]


def _external_section(external: dict | None) -> list[str]:
    """Figures on data sets the model never trained on (other cameras), as `evaluate` stored them."""
    if not external:
        return []
    lines = [
        "",
        "## External data (other cameras, never trained on; 95% bootstrap CIs)",
        "",
        markdown_table(
            ["data set", "n", "classes present", "balanced accuracy", "macro ROC AUC"],
            [[name, m.get("n", "?"), ", ".join(m.get("classes_present", m.get("per_class", {}))),
              _ci(m, "balanced_accuracy"), _ci(m, "macro_auc")] for name, m in external.items()],
        ),
    ]
    rows = [row for name, m in external.items() for row in _versus_rows(name, m.get("versus_normal") or {})]
    if rows:
        lines += ["", VERSUS_NOTE, "", _versus_table(rows)]
    lines += ["", "```bash", *(m.get("command", "?") for m in external.values()), "```"]
    return lines


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
    ]
    rows = [
        ["real test images of this model's data (should pass)", report["real_test_n"],
         f"{report['real_test_flagged']:.1%}"],
        ["non-retinal images from unseen sources (should be flagged)", report["non_retinal_n"],
         f"{report['non_retinal_flagged']:.1%}"],
    ]
    if "other_modality_n" in report:
        rows.append(["test images of the other modality (should be flagged)", report["other_modality_n"],
                     f"{report['other_modality_flagged']:.1%}"])
    rows += [[f"real test images, source {source} (should pass)", entry["n"], _refused(entry)]
             for source, entry in report.get("real_test_by_source", {}).items()]
    rows += [[f"real photographs of {name}, cameras never trained on (should pass)", entry["n"], _refused(entry)]
             for name, entry in report.get("external", {}).items()]
    rows += [[f"wrong input, test part: {kind} (should be refused)", entry["n"], f"{entry['refused']:.1%}"]
             for kind, entry in report.get("wrong_inputs_test", {}).items()]
    rows += [[f"real test photograph as another camera gives it: {variant} (should pass)", entry["n"],
              _refused(entry)] for variant, entry in report.get("camera_variants_test", {}).items()]
    lines.append(markdown_table(["images", "n", "flagged"], rows))
    reasons = ", ".join(f"{k} {v}" for k, v in report.get("real_test_reasons", {}).items()) or "none"
    other = f" --other-modality {report['other_modality_data']}" if "other_modality_data" in report else ""
    command = report.get("command") or f"python -m training fit-checks --model {model_path} --data {data}{other}"
    lines += [
        "",
        f"Reasons among flagged real test images: {reasons}. "
        f"Checks add {report.get('ms_per_image', float('nan')):.1f} ms "
        "per image (median, on the Keras path, by the command below; `benchmarks/predict_latency.py` "
        "measures the app's compiled path).",
    ]
    if report.get("wrong_inputs_test"):
        lines += [
            "",
            "Wrong inputs are images a clinic could feed by mistake: real images of each kind in the "
            "wrong-inputs folder ("
            + ", ".join(k for k in report["wrong_inputs_test"] if k not in FUNDUS_KINDS)
            + "; a fixed test part by a hash of the file name, never trained on), and red-free "
            "(green channel, grey or green) and greyscale copies of the fundus set's test photographs. "
            "Reasons among refused wrong inputs: "
            + "; ".join(
                f"{kind}: " + (", ".join(f"{k} {v}" for k, v in entry["reasons"].items()) or "none")
                for kind, entry in report["wrong_inputs_test"].items()
            )
            + ". An image may fail several checks."
            + ("" if any(w in kind for kind in report["wrong_inputs_test"] for w in ("anterior", "lens", "slit"))
               else " Anterior-segment and slit-lamp lens photographs are not measured: none were available offline."),
        ]
    lines += [
        "",
        "```bash",
        command,
        "```",
    ]
    return lines


def _refused(entry: dict) -> str:
    """A refusal share with its reasons, "0.0%" alone when none."""
    why = ", ".join(f"{k} {v}" for k, v in entry["reasons"].items())
    return f"{entry['refused']:.1%}{f' ({why})' if why else ''}"


def _familiarity_section(entry: dict) -> list[str]:
    """The unfamiliar-image flag (training/classifier/familiarity.py): how often it fires in distribution,
    and whether flagged images are wrong more often than the others (a flag that does not
    predict error is noise)."""
    figures = entry.get("figures") if entry else None
    if not figures:
        return []

    def rate(row: dict, kind: str) -> str:
        value = row.get(f"error_rate_{kind}")
        count = row["flagged"] if kind == "flagged" else row["n"] - row["flagged"]
        return "–" if value is None else f"{value:.1%} ({row[f'errors_{kind}']}/{count})"

    def line(name: str, row: dict) -> list:
        auc = f"{row['error_auc']:.3f}" if "error_auc" in row else "–"
        errors = ([rate(row, "flagged"), rate(row, "unflagged"), row.get("error_ratio", "–"), auc]
                  if "errors_flagged" in row else ["–"] * 4)
        return [name, row["n"], f"{row['flagged_share']:.1%} ({row['flagged']})", *errors]

    lines = [
        "",
        "## Unfamiliar-image flag (a warning beside the answer)",
        "",
        f"{entry.get('method', '')}. Flagged above {entry['threshold']:g}, the {entry.get('chosen_on', '?')}. "
        "A flagged image keeps its answer; the GUI, the CLI, JSON, CSV and the PDF report add "
        "\"Unfamiliar image: unlike the images this model learned from; its output may be unreliable\". "
        "An error is the app's answer differing from the reference label.",
        "",
    ]
    rows = [line("validation split (threshold chosen here)", figures["val"])]
    if "test" in figures:
        rows.append(line("test split (in distribution; target: at most 5% flagged)", figures["test"]))
    for name, row in figures.get("external", {}).items():
        rows.append(line(f"external: {name} (never fitted nor tuned on; target ratio at least 2)", row))
    for name, row in figures.get("wrong_inputs", {}).items():
        rows += [[f"wrong input ({name}): {kind} (every answer is wrong)", part["n"], f"{part['flagged_share']:.1%}",
                  *["–"] * 4] for kind, part in row.get("by_folder", {}).items()]
        rows += [[f"wrong input ({name}), the image checks' test part: {kind}", part["n"],
                  f"{part['flagged_share']:.1%}", *["–"] * 4] for kind, part in row.get("test_part", {}).items()]
    headers = ["images", "n", "flagged", "error rate, flagged", "error rate, unflagged", "ratio",
               "ROC AUC of the distance for an error"]
    lines += [markdown_table(headers, rows), "", "```bash", entry.get("command", "?"), "```"]
    return lines


def run_card(options: CardOptions) -> Path:
    """`card`: write the markdown card of `options.model` to `options.out`; returns its path."""
    limitations = [line.strip() for line in options.limitation]
    text = render_card(Path(options.model), options.intended_use, limitations)
    with atomic_write(options.out, encoding="utf-8") as handle:
        handle.write(text)
    logger.info(f"wrote {options.out}")
    return Path(options.out)


def _origin(config: dict) -> str:
    """How the network's weights started: from scratch, or from ImageNet (and what was kept)."""
    if not config.get("weights"):
        return f"width multiplier {config.get('width_multiplier', 1)}, trained from scratch"
    if "chosen" in config:  # screening-probe: the backbone is never trained
        return f"frozen ImageNet weights; head {config['chosen']}"
    kept = [f"stem and first {config['frozen_blocks']} blocks frozen"] if config.get("frozen_blocks") else []
    if config.get("freeze_batchnorm", True):
        kept.append("batch norm frozen")
    start = "ImageNet weights" if config["weights"] == "imagenet" else f"weights from `{config['weights']}`"
    return f"fine-tuned from {start}" + (f", {', '.join(kept)}" if kept else "")
