"""The experiment's report: finished runs aggregated over seeds, the target judged, report.md.

Two kinds of uncertainty are shown and kept apart. "mean ± std [min, max]" is over classifier
seeds (training noise: initialisation, batch order, augmentation draws). Each run's 95% CI is
the bootstrap over test images of `training.evaluation.metrics.compute_metrics` (the test split's sampling
noise); the per-run table lists them. Nothing is averaged across the two.

The target (issue #5): at the cut setting, the better GAN condition beats the best non-GAN
condition on mean scarce-class sensitivity by at least 5 points, without losing macro AUC, where
losing means a mean macro AUC below the best non-GAN mean macro AUC minus the pooled seed std of
the two conditions, sqrt((s1^2 + s2^2) / 2). A difference in sensitivity, gain or drop, counts
only when Welch's t-test over the seeds says it is unlikely to be chance (p < 0.05): with a small
test split and classifiers that early-stop on a small validation split, seeds alone can move a
condition's sensitivity by tens of points (oct-dme), and a mean gain of 5 points can be noise.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from training.evaluation.tables import markdown_table
from training.experiments.config import CONDITIONS, FILTERED_CONDITIONS, SETTINGS, PipelineConfig
from training.experiments.runs import planned_runs, read_result

TARGET_POINTS = 5.0
CHANCE_P = 0.05  # Welch's t-test over seeds: a difference with p at or above this may be chance
GAN_CONDITIONS = tuple(c for c in CONDITIONS if "gan" in c)
PLAIN_CONDITIONS = tuple(c for c in CONDITIONS if "gan" not in c)
REPORT_DIR = "report"


def stats(values: list[float]) -> dict:
    """mean, sample std (NaN with one value), min, max and n of `values`."""
    array = np.asarray(values, dtype=float)
    if not len(array):
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": int(len(array)),
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else math.nan,
        "min": float(array.min()),
        "max": float(array.max()),
        "values": [float(v) for v in array],
    }


def chance_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test that seeds of `a` and `b` share a mean; NaN with one seed.

    Seeds of two conditions that did not vary at all (the same figure every seed) are told
    apart exactly: p 0 when their values differ, 1 when they are the same.
    """
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.std(a) == 0 and np.std(b) == 0:
        return 0.0 if a[0] != b[0] else 1.0
    with warnings.catch_warnings():  # one condition's identical seeds: scipy warns, the test holds
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(a, b, equal_var=False).pvalue)


def metric_names(config: PipelineConfig) -> list[tuple[str, str]]:
    """(key, heading) of every reported figure; per-class sensitivity only with several scarce classes."""
    which = " (mean)" if len(config.scarce) > 1 else f" ({config.scarce[0]})"
    names = [("scarce_sensitivity", "scarce sensitivity" + which)]
    if len(config.scarce) > 1:
        names += [(f"sensitivity:{c}", f"{c} sensitivity") for c in config.scarce]
    return names + [("macro_f1", "macro F1"), ("macro_auc", "macro AUC")]


def value_of(result: dict, key: str) -> float:
    if key.startswith("sensitivity:"):
        return float(result["sensitivity"][key.split(":", 1)[1]])
    return float(result[key])


def summarise(results: list[dict], config: PipelineConfig) -> dict:
    """{setting: {condition: {"n": seeds done, metric key: stats}}} over the planned selection."""
    summary: dict = {}
    for setting in (s for s in SETTINGS if s in config.settings):
        summary[setting] = {}
        for condition in (c for c in CONDITIONS if c in config.conditions):
            mine = [r for r in results if r["setting"] == setting and r["condition"] == condition]
            entry: dict = {"n": len(mine)}
            for key, _ in metric_names(config):
                entry[key] = stats([value_of(r, key) for r in mine])
            summary[setting][condition] = entry
    return summary


@dataclass(frozen=True)
class Verdict:
    met: bool | None  # None: cannot be judged (yet)
    sentence: str


def judge_target(summary: dict, config: PipelineConfig) -> Verdict:
    """The plain sentence on the issue's target, from the cut setting's seed means."""
    where = f"At the cut setting ({config.cut_label()})"
    cut = summary.get("cut")
    if not cut:
        return Verdict(None, "The target cannot be judged: the cut setting was not run.")
    gans = [c for c in GAN_CONDITIONS if c in cut]
    plains = [c for c in PLAIN_CONDITIONS if c in cut]
    if not gans or not plains:
        return Verdict(None, "The target cannot be judged: it needs at least one GAN and one non-GAN condition.")
    unfinished = [c for c in gans + plains if cut[c]["n"] < len(config.seeds)]
    if unfinished:
        return Verdict(None, f"The target cannot be judged yet: {', '.join(unfinished)} at the cut setting "
                             f"have not finished all {len(config.seeds)} seeds.")

    def mean(condition: str, key: str) -> float:
        return cut[condition][key]["mean"]

    def spread(condition: str, key: str) -> float:
        std = cut[condition][key]["std"]
        return 0.0 if math.isnan(std) else std

    def pooled(a: str, b: str, key: str) -> float:
        """The seed std of two conditions pooled: how far apart their means may be by chance."""
        return math.sqrt((spread(a, key) ** 2 + spread(b, key) ** 2) / 2)

    best_gan = max(gans, key=lambda c: mean(c, "scarce_sensitivity"))
    best_plain = max(plains, key=lambda c: mean(c, "scarce_sensitivity"))
    points = 100 * (mean(best_gan, "scarce_sensitivity") - mean(best_plain, "scarce_sensitivity"))
    auc_plain = max(plains, key=lambda c: mean(c, "macro_auc"))
    auc_noise = pooled(best_gan, auc_plain, "macro_auc")
    floor = mean(auc_plain, "macro_auc") - auc_noise
    loses_auc = mean(best_gan, "macro_auc") < floor
    gains = points >= TARGET_POINTS - 1e-9
    p = chance_p(cut[best_gan]["scarce_sensitivity"]["values"], cut[best_plain]["scarce_sensitivity"]["values"])
    chance = "one seed per condition: chance not tested" if math.isnan(p) else f"Welch's t-test over seeds: p = {p:.2g}"
    comparison = (
        f"{where}, the better GAN condition ({best_gan}) reaches a mean scarce-class sensitivity of "
        f"{mean(best_gan, 'scarce_sensitivity'):.3f} against {mean(best_plain, 'scarce_sensitivity'):.3f} for the best "
        f"non-GAN condition ({best_plain}), {points:+.1f} points (target: +{TARGET_POINTS:.0f} or more; {chance})"
    )
    auc = (
        f"its mean macro AUC {mean(best_gan, 'macro_auc'):.3f} is {'below' if loses_auc else 'not below'} the best "
        f"non-GAN mean macro AUC ({auc_plain}, {mean(auc_plain, 'macro_auc'):.3f}) minus the pooled seed std "
        f"{auc_noise:.3f}"
    )
    beyond_chance = math.isnan(p) or p < CHANCE_P
    if gains and not loses_auc and beyond_chance:
        return Verdict(True, f"Target met. {comparison}, and {auc}.")
    # A difference counts only when it is unlikely to be chance: a drop that may be chance is no
    # loss, a gain that may be chance is no gain.
    if not gains:
        dropped = points < 0 and p < CHANCE_P  # NaN (one seed) is no evidence of a drop
        shortfall = "GAN images lower scarce-class sensitivity" if dropped else "the gain is too small"
    else:
        shortfall = None if beyond_chance else "the gain may be chance"
    reason = " and ".join(r for r in (shortfall, "it loses macro AUC" if loses_auc else None) if r)
    return Verdict(False, f"Target not met ({reason}). {comparison}; {auc}.")


def _cell(s: dict) -> str:
    if not s["n"]:
        return "not run yet"
    std = "–" if math.isnan(s["std"]) else f"{s['std']:.3f}"
    return f"{s['mean']:.3f} ± {std} [{s['min']:.3f}, {s['max']:.3f}]"


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:.3f} ({ci[0]:.3f}–{ci[1]:.3f})"


def plot_summary(summary: dict, results: list[dict], config: PipelineConfig, path: str) -> None:
    """Bars: seed means per condition, grouped by setting; error bars one std; dots the seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = metric_names(config)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * rows), dpi=110)
    FigureCanvasAgg(figure)
    settings = list(summary)
    conditions = [c for c in CONDITIONS if c in config.conditions]
    width = 0.8 / max(1, len(conditions))
    colours = ["#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    for n, (key, heading) in enumerate(names):
        axes = figure.add_subplot(rows, columns, n + 1)
        for j, condition in enumerate(conditions):
            xs = np.arange(len(settings)) + (j - (len(conditions) - 1) / 2) * width
            means = [summary[s][condition][key]["mean"] for s in settings]
            stds = [np.nan_to_num(summary[s][condition][key]["std"]) for s in settings]
            colour = colours[CONDITIONS.index(condition)]
            axes.bar(xs, np.nan_to_num(means), width * 0.9, yerr=stds, capsize=3, color=colour,
                     label=condition if n == 0 else None)
            for x, setting in zip(xs, settings):
                seeds = [value_of(r, key) for r in results if r["setting"] == setting and r["condition"] == condition]
                axes.plot([x] * len(seeds), seeds, "k.", markersize=3)
        axes.set_xticks(range(len(settings)), [config.cut_label().replace(" per ", "\nper ") if s == "cut" else "full"
                                               for s in settings], fontsize=8)
        axes.set_ylim(0, 1.05)
        axes.set_title(heading, fontsize=10)
    figure.legend(loc="lower center", ncol=len(conditions), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, format="png")


def write_report(out: Path, config: PipelineConfig, stored: dict, docs: Path | None = None) -> Path:
    """Write out/report/report.md and its figures from the finished runs; copy them to `docs`."""
    folder = out / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    runs = planned_runs(config)
    results = [r for r in (read_result(out, k) for k in runs) if r is not None]
    summary = summarise(results, config)
    verdict = judge_target(summary, config)
    figures = []
    if results:
        atomic_save(folder / "metrics.png", lambda p: plot_summary(summary, results, config, p))
        figures.append("metrics.png")
    grids = []
    for setting in summary:
        grid = out / "synthetic" / setting / "grid.png"
        if grid.exists():
            atomic_save(folder / f"gan_samples_{setting}.png", lambda p, g=grid: shutil.copyfile(g, p))
            grids.append(setting)
    text = _markdown(out, config, stored, summary, results, verdict, figures, grids, len(runs))
    with atomic_write(folder / "report.md") as handle:
        handle.write(text)
    with atomic_write(folder / "summary.json") as handle:
        json.dump(
            _strict({"summary": summary, "target_met": verdict.met, "verdict": verdict.sentence}), handle, indent=1
        )
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        for name in ["report.md", "summary.json", *figures, *(f"gan_samples_{s}.png" for s in grids)]:
            atomic_save(docs / name, lambda p, n=name: shutil.copyfile(folder / n, p))
    return folder / "report.md"


def _strict(value):
    """NaN (a std of one seed) as null, so that summary.json is standard JSON."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _gan_facts(out: Path, setting: str) -> dict | None:
    sidecar = out / "gan" / setting / "generator.json"
    return json.loads(sidecar.read_text())["provenance"] if sidecar.exists() else None


def _augmentation(out: Path) -> str:
    """How the discriminator's inputs were augmented, as the GANs' own configs record it."""
    from training.gan.config import GanConfig

    described = set()
    for path in sorted((out / "gan").glob("*/config.json")):
        gan = GanConfig.from_dict(json.loads(path.read_text()))
        if not gan.augment:
            described.add("no DiffAugment")
        elif gan.ada_target > 0:
            described.add(f"DiffAugment ({gan.augment}) at ADA's adaptive probability (target {gan.ada_target})")
        else:
            described.add(f"DiffAugment ({gan.augment}) at probability {gan.augment_p}")
    return "; ".join(sorted(described)) or "DiffAugment"


def _markdown(out, config, stored, summary, results, verdict, figures, grids, planned) -> str:
    seconds = sum(r["wall_seconds"] for r in results)
    gan_seconds = sum((_gan_facts(out, s) or {}).get("training_seconds", 0) for s in summary)
    names = metric_names(config)
    scarce = ", ".join(config.scarce)
    target = f"{config.gan_target} images" if config.gan_target else "the largest class count"
    learns = "all classes" if config.gan_classes == "all" else "the scarce classes only"
    frozen = config.classifier == "frozen-lite0"
    lines = [
        f"# Does GAN augmentation help the scarce classes? {Path(config.data).name}",
        "",
        "Model output on a research data set, not a diagnosis and not a medical device: sensitivity here is "
        "the share of a class's test images that the classifier labelled as that class.",
        "",
        "## Verdict",
        "",
        verdict.sentence,
        "",
        "## Setup",
        "",
        f"- Data: `{config.data}`; scarce classes: {scarce}.",
        "- Settings: " + "; ".join(
            f"**cut** (each scarce class's training images drawn down to {config.scarce_n}, seed "
            f"{config.cut_seed}, from the train split only; other classes whole)" if s == "cut"
            else "**full** (the whole train split)" for s in config.settings) + ".",
        "- Conditions: **none** (no augmentation); **traditional** (the app's augmentation layers for "
        f"`{config.modality}`: flips, rotation, zoom, brightness, contrast, gamma"
        + (", and the camera changes of `--camera-augment`" if frozen and config.modality == "fundus" else "")
        + f"); **gan** (each scarce class topped up with GAN images to {target}); "
        "**gan+traditional** (both)"
        + ("; **filtered-gan** and **filtered-gan+traditional** (the same number of GAN images, chosen from twice "
           "as many: those a head trained on the setting's real images, with traditional views and the run's "
           "seed, gives the highest probability of the class they were drawn for)"
           if any(c in config.conditions for c in FILTERED_CONDITIONS) else "") + ".",
        _classifier_line(config),
        f"- GAN: the project's class-conditional GAN (training.gan.trainer), {config.gan_size} x {config.gan_size} px, "
        f"width {config.gan_width}, latent {config.gan_latent_dim}, {config.gan_epochs} epochs in the cut setting "
        "and as many optimiser steps in the full one (fewer epochs over more images), batch "
        f"{config.gan_batch_size}, {config.gan_loss} loss"
        + (f" with an R1 penalty (gamma {config.gan_r1_gamma:g})" if config.gan_r1_gamma else "")
        + f", {_augmentation(out)}; learns {learns}. "
        "One GAN per setting (seed 0), trained only on that setting's training images; its images are "
        "made once and shared by every seed.",
        "- Validation (early stopping) and test splits: real and untouched; the test split is used only for the "
        "figures below.",
        f"- Uncertainty: **mean ± std [min, max] over seeds**; per-run 95% bootstrap CIs over test images "
        f"({config.bootstrap} resamples) in the per-run table. Metrics from raw softmax outputs (no temperature), "
        "sensitivity at the arg-max decision.",
        f"- Runs finished: {len(results)} of {planned}; classifier time {seconds / 3600:.2f} h, GAN time "
        f"{gan_seconds / 3600:.2f} h on {platform.machine()} with {os.cpu_count()} CPUs.",
        "",
        "Command:",
        "",
        "```",
        stored.get("command", ""),
        "```",
        "",
    ]
    if config.gan_full:
        lines.insert(lines.index("- Validation (early stopping) and test splits: real and untouched; the test split "
                                 "is used only for the figures below."),
                     f"- The full setting's GAN is `{config.gan_full}`, trained on the same training images "
                     "beforehand (its sidecar's provenance is in gan/full/generator.json); its epochs are its own.")
    lines += _counts_table(out, config, results)
    for setting, conditions in summary.items():
        title = config.cut_label() if setting == "cut" else "full training set"
        lines += [f"## Results: {setting} ({title})", "", markdown_table(
            ["condition", "seeds", *(h for _, h in names)],
            [[condition, f"{entry['n']}/{len(config.seeds)}", *(_cell(entry[k]) for k, _ in names)]
             for condition, entry in conditions.items()]), ""]
        lines += _differences_table(conditions, names)
        lines += _per_source_table(setting, config, results)
        lines += _external_table(setting, config, results)
    if figures:
        lines += ["## Figures", "", "Bars: seed means; error bars: one std over seeds; dots: single seeds.", "",
                  "![scarce sensitivity, macro F1 and macro AUC per condition](metrics.png)", ""]
    for setting in grids:
        rows = ", ".join(f"real {c}, GAN {c}" for c in config.scarce)
        lines += [f"GAN images used in the {setting} setting (rows: {rows}; synthetic images are model output, "
                  "not patient data):", "", f"![GAN samples, {setting}](gan_samples_{setting}.png)", ""]
    rows = []
    for r in results:
        m = r["metrics"]
        per_class = [_ci(m["per_class"][c]["sensitivity"], m["per_class"][c]["sensitivity_ci"]) for c in config.scarce]
        rows.append([r["setting"], r["condition"], r["seed"], f"{r['epochs_trained']} ({r['best_epoch']})", *per_class,
                     _ci(m["macro_f1"], m["macro_f1_ci"]), _ci(m["macro_auc"], m["macro_auc_ci"]),
                     f"{r['wall_seconds'] / 60:.1f}"])
    headers = ["setting", "condition", "seed", "epochs (best)", *(f"{c} sensitivity" for c in config.scarce),
               "macro F1", "macro AUC", "minutes"]
    lines += ["## Per run", "", "Values with their 95% bootstrap CI over test images.", "",
              markdown_table(headers, rows), ""]
    return "\n".join(lines)


def _classifier_line(config: PipelineConfig) -> str:
    seeds = ", ".join(map(str, config.seeds))
    weights = "balanced class weights" if config.class_weighting else "no class weights"
    if config.classifier == "frozen-lite0":
        from training.experiments.features import HeadConfig

        head = HeadConfig()
        return (f"- Classifier: ImageNet EfficientNet-Lite0, frozen, at {config.size} x {config.size} px "
                f"({config.fit}); its pooled features (computed once per image and augmented view) feed a "
                f"dropout {head.dropout} + softmax head, AdamW lr {head.learning_rate}, batch {head.batch_size}, up "
                f"to {head.epochs} epochs, early stopping on val macro AUC (patience {head.patience}), {weights}; "
                f"the traditional conditions give each training image {config.views} augmented views besides "
                f"itself, one drawn per epoch; seeds {seeds} (head initialisation, dropout, order, view draws).")
    return (f"- Classifier: the project's `small` residual CNN (training.classifier.trainer), "
            f"{config.size} x {config.size} px "
            f"({config.fit}), width multiplier {config.width_multiplier}, up to {config.epochs} epochs, batch "
            f"{config.batch_size}, AdamW lr {config.learning_rate} (cosine), early stopping on val macro AUC "
            f"(patience {config.patience}), {weights} in every condition; seeds {seeds}.")


def _per_source_table(setting: str, config: PipelineConfig, results: list[dict]) -> list[str]:
    """Seed means per source of the test split: macro AUC and each scarce class's sensitivity."""
    mine = [r for r in results if r["setting"] == setting and r.get("per_source")]
    sources = sorted({s for r in mine for s in r["per_source"]})
    if not sources:
        return []
    columns = [("macro_auc", "macro AUC")] + [(f"{c}_sensitivity", f"{c} sensitivity") for c in config.scarce]
    first = mine[0]["per_source"]
    sizes = ", ".join(
        f"{s} {first[s]['n']}" + "".join(f", {c} {first[s].get(f'{c}_n', 0)}" for c in config.scarce)
        for s in sources if s in first)
    lines = [f"Per source of the test images (seed means; images per source and scarce class: {sizes}; "
             "– where a source has none of a class):", ""]
    rows = []
    for condition in (c for c in CONDITIONS if c in config.conditions):
        runs = [r for r in mine if r["condition"] == condition]
        if not runs:
            continue
        cells = []
        for source in sources:
            for key, _ in columns:
                values = [r["per_source"].get(source, {}).get(key) for r in runs]
                values = [v for v in values if v is not None and not math.isnan(v)]
                cells.append(f"{np.mean(values):.3f}" if values else "–")
        rows.append([condition, *cells])
    return [*lines, markdown_table(["condition", *(f"{s}: {h}" for s in sources for _, h in columns)], rows), ""]


def _external_table(setting: str, config: PipelineConfig, results: list[dict]) -> list[str]:
    """Seed means on the other camera: each disease against healthy eyes (AUC, sensitivity) and
    the share of healthy eyes called healthy."""
    mine = [r for r in results if r["setting"] == setting and r.get("external")]
    if not mine:
        return []
    first = mine[0]["external"]
    diseases = list((first.get("versus_normal") or {}).get("diseases") or {})
    columns = [(d, "auc", f"{d} vs normal AUC") for d in diseases] + [
        (d, "sensitivity", f"{d} sensitivity") for d in diseases]
    columns += [(diseases[0], "specificity", "healthy called normal")] if diseases else []
    lines = [f"On another camera (`{config.external}`, {first['n']} images, never trained or tuned on; seed means "
             "± std):", ""]
    rows = []
    for condition in (c for c in CONDITIONS if c in config.conditions):
        runs = [r for r in mine if r["condition"] == condition]
        if not runs:
            continue
        cells = []
        for disease, key, _ in columns:
            values = [r["external"]["versus_normal"]["diseases"][disease][key] for r in runs]
            cells.append(_cell(stats(values)).split(" [")[0])
        rows.append([condition, *cells])
    return [*lines, markdown_table(["condition", *(h for _, _, h in columns)], rows), ""]


# Each GAN condition against the condition it adds GAN images to.
BASELINES = {"gan": "none", "gan+traditional": "traditional", "filtered-gan": "none",
             "filtered-gan+traditional": "traditional"}


def _differences_table(conditions: dict, names: list[tuple[str, str]]) -> list[str]:
    """Mean differences of each GAN condition from its baseline, with Welch's p over seeds."""
    pairs = [(g, b) for g, b in BASELINES.items()
             if conditions.get(g, {}).get("n", 0) > 1 and conditions.get(b, {}).get("n", 0) > 1]
    if not pairs:
        return []
    lines = [f"GAN images against the same condition without them: mean difference (Welch's t-test over seeds, "
             f"p; below {CHANCE_P} is unlikely to be chance).", ""]
    rows = []
    for gan, base in pairs:
        cells = []
        for key, _ in names:
            a, b = conditions[gan][key], conditions[base][key]
            cells.append(f"{a['mean'] - b['mean']:+.3f} (p = {chance_p(a['values'], b['values']):.2g})")
        rows.append([f"{gan} − {base}", *cells])
    return [*lines, markdown_table(["comparison", *(h for _, h in names)], rows), ""]


def _counts_table(out: Path, config: PipelineConfig, results: list[dict]) -> list[str]:
    """Training images per class and setting (real + GAN), from the runs themselves."""
    seen: dict[str, dict] = {}
    for r in results:
        key = "gan" if "gan" in r["condition"] else "real"
        seen.setdefault(r["setting"], {})[key] = r["train_counts"]
    if not seen:
        return []
    any_result = results[0]
    classes = list(any_result["train_counts"]["real"])
    test = {c: any_result["metrics"]["per_class"][c]["n"] for c in classes}
    rows = []
    for c in classes:
        cells = []
        for kinds in seen.values():
            counts = kinds.get("gan") or kinds["real"]
            synth = counts["synthetic"].get(c, 0)
            cells.append(f"{counts['real'][c]}" + (f" + {synth}" if synth else ""))
        rows.append([c, *cells, test[c]])
    return ["Training images per class (real + GAN) and test images:", "",
            markdown_table(["class", *(f"train, {s}" for s in seen), "test"], rows),
            f"\nValidation images in all runs: {any_result['val_n']}; test images: {any_result['test_n']}.\n"]
