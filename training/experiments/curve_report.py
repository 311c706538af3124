"""The learning curve's figures, verdicts, plots and report.md.

Owns how a cell's test probabilities become the issue's figures:

- the scarce class's sensitivity at a specificity of 0.90 (the threshold is the 90th
  percentile of p(class) over the test images of every other class) and its one-vs-rest AUC,
  on the whole test split and per source;
- each condition's figure as the mean over its seeds, with a 95% bootstrap interval over test
  images (resampled within the class and within the rest, so every resample has both);
- paired differences between conditions at each point (the seeds' mean difference, and its
  bootstrap interval from the same resamples of both conditions: the pairing is the test
  images, and the seeds are averaged inside each resample).

The verdict at a point compares GAN images with traditional augmentation, the issue's question:
"helps" or "hurts" when the difference's interval excludes 0, "no effect" when the interval
lies within +/- 3 points, "undecided" otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from training.evaluation.tables import markdown_table

logger = logging.getLogger(__name__)

SPECIFICITY = 0.90
N_BOOTSTRAP = 1000
NO_EFFECT = 0.03  # a difference interval inside +/- 3 points is an answer: no effect
COMPARISONS = (("gan", "traditional"), ("both", "traditional"), ("gan", "real"), ("traditional", "real"))
METRICS = ("sensitivity", "auc")
HEADINGS = {"sensitivity": f"sensitivity at specificity {SPECIFICITY:.2f}", "auc": "AUC (one against the rest)"}


def figures(positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(sensitivity at SPECIFICITY, AUC) of one class's scores; NaNs without both kinds."""
    from training.evaluation.metrics import rank_auc

    if positive.all() or not positive.any():
        return float("nan"), float("nan")
    threshold = np.quantile(score[~positive], SPECIFICITY)
    return float(np.mean(score[positive] > threshold)), rank_auc(positive, score)


def resamples(positive: np.ndarray, n: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(n, len) index arrays: each a bootstrap of the class's images and, apart, of the rest."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(positive), np.flatnonzero(~positive)
    return np.stack([np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]) for _ in range(n)])


def seed_figures(runs: list[np.ndarray], positive: np.ndarray, draws: np.ndarray) -> dict[str, np.ndarray]:
    """{metric: (seeds, 1 + n_draws)}: each seed's figure on the test images as they are, then per
    resample."""
    values = np.array([[figures(positive, scores)] + [figures(positive[d], scores[d]) for d in draws]
                       for scores in runs])  # (seeds, 1 + n_draws, metrics)
    return {m: values[:, :, i] for i, m in enumerate(METRICS)}


def seed_mean(per_seed: np.ndarray) -> dict:
    """The seeds' mean figure with its bootstrap interval."""
    mean = per_seed.mean(axis=0)
    return {"value": round(float(mean[0]), 4), "ci": interval(mean[1:])}


def difference(a: np.ndarray, b: np.ndarray) -> dict:
    """Seed-mean figure of `a` less `b`, paired through the same resamples, with its verdict."""
    delta = a.mean(axis=0) - b.mean(axis=0)
    ci = interval(delta[1:])
    return {"value": round(float(delta[0]), 4), "ci": ci, "verdict": verdict(ci)}


def interval(values: np.ndarray) -> list[float]:
    return [round(float(np.nanpercentile(values, 2.5)), 4), round(float(np.nanpercentile(values, 97.5)), 4)]


def verdict(ci: list[float]) -> str:
    if ci[0] > 0:
        return "helps"
    if ci[1] < 0:
        return "hurts"
    if -NO_EFFECT <= ci[0] and ci[1] <= NO_EFFECT:
        return "no effect"
    return "undecided"


def summarise(curve, probs: dict) -> dict:
    """Every figure of the curve: {label: {point: {...}}}, per source too."""
    from training.experiments.curve_plan import SHIPPED, conditions_at, point_name

    config = curve.config
    test = curve.sets()["test"]
    out: dict = {}
    for label in config.scarce:
        index = curve.classes.index(label)
        positive_all = test.labels == index
        scopes = {"all": np.ones(len(test.labels), bool)}
        sources = sorted(set(test.sources[positive_all]))
        for source in sources if len(sources) > 1 else ():  # one source is the whole split again
            scopes[str(source)] = test.sources == source
        # (rows, the class among them, resamples): the same at every point of the curve
        scopes = {scope: (rows, positive_all[rows], resamples(positive_all[rows])) for scope, rows in scopes.items()}
        out[label] = {}
        for n in config.points:
            entry: dict = {"real_images": len(curve.real_images(label, n))}
            conditions = conditions_at(config, n)
            comparisons = COMPARISONS + (((SHIPPED, "traditional"), (SHIPPED, "real")) if SHIPPED in conditions else ())
            for scope, (rows, positive, draws) in scopes.items():
                seeds = {c: seed_figures([probs[(label, n, c, s)][rows, index] for s in
                                          range(1 if c == "real" else config.seeds)], positive, draws)
                         for c in conditions}
                part: dict = {"positives": int(positive.sum()), "negatives": int((~positive).sum())}
                for c in conditions:
                    part[c] = {m: seed_mean(seeds[c][m]) for m in METRICS}
                    if c != "real":
                        for m in METRICS:
                            part[c][m]["seed_std"] = round(float(np.std(seeds[c][m][:, 0])), 4)
                part["differences"] = {f"{a} - {b}": {m: difference(seeds[a][m], seeds[b][m]) for m in METRICS}
                                       for a, b in comparisons}
                entry[scope] = part
            out[label][point_name(n)] = entry
    return out


GAN_CONDITIONS = ("gan", "both")  # the conditions with the point's own GAN images


def most_promising(summary: dict) -> tuple[str, str, str]:
    """(class, point, condition): where a condition with GAN images beats traditional
    augmentation by the most sensitivity (then AUC), the cell the issue asks to confirm with
    the full recipe."""
    cells = []
    for label, points in summary.items():
        for point, entry in points.items():
            for condition in GAN_CONDITIONS:
                gain = entry["all"]["differences"][f"{condition} - traditional"]
                cells.append((gain["sensitivity"]["value"], gain["auc"]["value"], label, point, condition))
    *_, label, point, condition = max(cells)
    return label, point, condition


def confirmation(curve, label: str, point: str, condition: str, probs: dict, seeds: int) -> dict:
    """`condition` against traditional at one cell with the head searched on val for every fit."""
    test = curve.sets()["test"]
    index = curve.classes.index(label)
    positive = test.labels == index
    draws = resamples(positive)
    figures_of = {c: seed_figures([probs[(c, s)][:, index] for s in range(seeds)], positive, draws)
                  for c in ("traditional", condition)}
    out: dict = {"class": label, "point": point, "condition": condition, "seeds": seeds}
    for c, values in figures_of.items():
        out[c] = {m: seed_mean(values[m]) for m in METRICS}
    out["difference"] = {m: difference(figures_of[condition][m], figures_of["traditional"][m]) for m in METRICS}
    return out


def plot_curves(summary: dict, path: Path) -> None:
    """Per class, the two figures against the number of real images, one line per condition."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from training.experiments.curve_plan import CONDITIONS, SHIPPED

    labels = list(summary)
    figure = Figure(figsize=(9, 3.4 * len(labels)), dpi=110)
    FigureCanvasAgg(figure)
    colours = {"real": "#7f7f7f", "traditional": "#4c72b0", "gan": "#dd8452", "both": "#55a868", SHIPPED: "#c44e52"}
    for row, label in enumerate(labels):
        points = summary[label]
        xs = np.array([points[p]["real_images"] for p in points], dtype=float)
        for col, metric in enumerate(METRICS):
            axes = figure.add_subplot(len(labels), 2, 2 * row + col + 1)
            for k, condition in enumerate(CONDITIONS):
                shift = 1 + (k - 1.5) * 0.025  # side by side on the log axis
                values = np.array([points[p]["all"][condition][metric]["value"] for p in points])
                cis = np.array([points[p]["all"][condition][metric]["ci"] for p in points])
                axes.errorbar(xs * shift, values, yerr=[values - cis[:, 0], cis[:, 1] - values], marker="o",
                              markersize=4, capsize=3, color=colours[condition], label=condition)
            shipped = [(x, points[p]["all"][SHIPPED][metric]) for x, p in zip(xs, points, strict=True)
                       if SHIPPED in points[p]["all"]]
            for x, value in shipped:  # one point: the shipped generator at every real image
                axes.errorbar([x * 1.06], [value["value"]], yerr=[[value["value"] - value["ci"][0]],
                              [value["ci"][1] - value["value"]]], marker="D", markersize=5, capsize=3,
                              color=colours[SHIPPED], label=SHIPPED, linestyle="none")
            axes.set_xscale("log")
            axes.set_xticks(xs, [str(int(x)) for x in xs])
            axes.minorticks_off()
            axes.set_xlabel(f"real {label.replace('_', ' ')} training images")
            axes.set_title(f"{label.replace('_', ' ')}: {HEADINGS[metric]}", fontsize=10)
            axes.set_ylim(0, 1.02)
            if row == 0 and col == 0:
                axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    atomic_save(path, lambda tmp: figure.savefig(tmp, format="png"))


def sample_grid(curve, path: Path, columns: int = 8, tile: int = 96) -> None:
    """Per class and point, the first GAN images of the point's pool beside real images of the
    point: what each generator drew from what it was shown."""
    from PIL import Image, ImageDraw

    from retina_desktop.core.model_card import InputSpec
    from retina_desktop.imaging.decode import load_image
    from retina_desktop.imaging.preprocessing import fit_image
    from training.experiments.curve_plan import SHIPPED, point_name

    framed = InputSpec(tile, tile, curve.config.recipe.fit, "none")  # real photographs as the GAN learnt them

    def pictures_of(paths):
        return [Image.fromarray(fit_image(load_image(p).rgb, framed)) for p in paths]

    rows = []
    for label in curve.config.scarce:
        for n in curve.config.points:
            name = point_name(n)
            fakes = sorted((curve.out / "pools" / label / name / "gan").glob("*.png"))
            reals = [curve.dataset.root / s.file for s in curve.real_images(label, n)[:columns // 2]]
            rows.append((f"{label.replace('_', ' ')}, {len(curve.real_images(label, n))} real: "
                         f"{len(reals)} real, then the point's GAN", pictures_of(reals + fakes[:columns - len(reals)])))
        shipped = sorted((curve.out / "pools" / label / "all" / SHIPPED).glob("*.png"))
        if shipped:
            rows.append((f"{label.replace('_', ' ')}: the shipped generator", pictures_of(shipped[:columns])))
    caption = 18
    grid = Image.new("RGB", (columns * tile, len(rows) * (tile + caption)), "white")
    draw = ImageDraw.Draw(grid)
    for r, (text, pictures) in enumerate(rows):
        top = r * (tile + caption)
        draw.text((4, top + 3), text, fill="black")
        for c, picture in enumerate(pictures):
            grid.paste(picture.convert("RGB").resize((tile, tile)), (c * tile, top + caption))
    atomic_save(path, lambda tmp: grid.save(tmp, format="JPEG", quality=85))


def _cell(entry: dict) -> str:
    return f"{entry['value']:.3f} [{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]"


def _signed(entry: dict) -> str:
    return f"{entry['value']:+.3f} [{entry['ci'][0]:+.3f}, {entry['ci'][1]:+.3f}] {entry['verdict']}"


def render(summary: dict, confirmed: dict, curve, clock, command: str, plot_name: str) -> str:
    from training.experiments.curve_plan import CONDITIONS, SHIPPED

    config = curve.config
    columns = CONDITIONS + ((SHIPPED,) if config.shipped_generator else ())
    modality = {"fundus": "fundus", "oct": "OCT"}[config.modality]
    if config.C is None:
        head = ("logistic regression with its L2 strength searched on val for every fit (screening-probe's grid),"
                " logits at the training prior")
    else:
        head = (f"logistic regression with C = {config.C}, referable/mild DR weights {config.referable_weight}/"
                f"{config.mild_weight}, logits at the training prior")
    fast = ("the shipped recipe" if config.modality == "fundus" and config.C is not None
            else "a fast protocol (the shipped OCT model is a small CNN from scratch, too slow for every cell)")
    lines = [
        f"# Does GAN data help the shipped {modality} recipe? The learning curve (issue #36)",
        "",
        "Made by `gan-curve` (`training/experiments/gan_curve.py`); every figure below is on the test",
        "split of " + f"`{config.data}`, never used to choose anything.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- Classifier of every cell: {fast}: frozen ImageNet EfficientNet-Lite0 at {config.size} px"
        f" (`{config.recipe.fit}`); {head}.",
        f"- Each condition but `real` adds {config.added} images of the class: augmented views"
        " (`traditional`), GAN images (`gan`), or half of each (`both`);",
        f"  {config.seeds} seeds, each a draw of those images from pools of {2 * config.added}.",
        *([f"- `{SHIPPED}`: the same number of images from the shipped generator (`{config.shipped_generator}`),"
           " at the point of every real image only: it learnt from every training image of the class."]
          if config.shipped_generator else []),
        "- Figures: the seeds' mean, with a 95% bootstrap interval over test images"
        f" ({N_BOOTSTRAP} resamples, within the class and within the rest).",
        "- Verdict of a difference: helps / hurts when its interval excludes 0; no effect when it lies"
        f" within ±{NO_EFFECT:.2f}; undecided otherwise.",
        f"- Time: {clock.total() / 60:.1f} min in all on this {platform.machine()} machine"
        f" ({os.cpu_count()} cores), over {clock.calls} call(s) of the command (generators included).",
        "",
        f"![the curves]({plot_name})",
        "",
        "What each point's generator drew (left: real photographs of the point, framed as the GAN learnt them;"
        " right: its GAN images), and the shipped generator:",
        "",
        "![GAN images per point](samples.jpg)",
        "",
    ]
    for label, points in summary.items():
        lines += [f"## {label.replace('_', ' ')}", ""]
        for metric in METRICS:
            rows = [[entry["real_images"], *(_cell(entry["all"][c][metric]) if c in entry["all"] else "–"
                                             for c in columns)] for entry in points.values()]
            lines += [f"### {HEADINGS[metric]}, whole test split", "",
                      markdown_table(["real images", *columns], rows), ""]
        headings = [HEADINGS[m] for m in METRICS]
        rows = [[entry["real_images"], comparison, *(_signed(values[m]) for m in METRICS)]
                for entry in points.values() for comparison, values in entry["all"]["differences"].items()]
        lines += ["### Paired differences (seed means, 95% bootstrap interval, verdict)", "",
                  markdown_table(["real images", "comparison", *headings], rows), ""]
        sources = [s for s in next(iter(points.values())) if s not in ("real_images", "all")]
        if sources:
            rows = [[entry["real_images"], f"{source} ({entry[source]['positives']} / {entry[source]['negatives']})",
                     *(_signed(entry[source]["differences"]["gan - traditional"][m]) for m in METRICS)]
                    for entry in points.values() for source in sources]
            lines += ["### Per source: gan − traditional", "",
                      markdown_table(["real images", "source (class / rest)", *headings], rows), ""]
    lines += [
        f"## The most promising cell, {confirmation_heading(config)}",
        "",
        f"`{confirmed['condition']}` for {confirmed['class'].replace('_', ' ')} at {confirmed['point']} real images"
        " (the largest gain in sensitivity, then in AUC, of a condition with GAN images over traditional"
        " augmentation above),"
        f" {confirmation_method(config)}, {confirmed['seeds']} seeds (the same draws of added images as the"
        " curve's seeds).",
        "",
        markdown_table(
            [None, *(HEADINGS[m] for m in METRICS)],
            [*([c, *(_cell(confirmed[c][m]) for m in METRICS)] for c in ("traditional", confirmed["condition"])),
             [f"{confirmed['condition']} − traditional", *(_signed(confirmed["difference"][m]) for m in METRICS)]],
        ),
        "",
    ]
    return "\n".join(lines) + "\n"


def confirmation_heading(config) -> str:
    if config.confirm == "cnn":
        return "trained with the shipped model's own recipe"
    return "with the head searched on val for every fit"


def confirmation_method(config) -> str:
    if config.confirm == "cnn":
        from training.experiments.curve_cnn import shipped_recipe

        recipe = shipped_recipe(config.confirm_model)
        return (f"trained with the recipe in `{config.confirm_model}`'s record: the `{recipe.architecture}` CNN from"
                f" scratch at {recipe.height} x {recipe.width} (`{recipe.fit}`), {recipe.epochs} epochs of batch"
                f" {recipe.batch_size}, learning rate {recipe.learning_rate:g}, the app's {config.modality}"
                " augmentation, class weights, the best epoch by val macro AUC")
    return ("refitted as `screening-probe` itself does: L2 strength and DR grade weights chosen on val for each"
            " fit")


def write_report(curve, summary: dict, confirmed: dict, folder: Path, clock, log=logger.info) -> None:
    """summary.json, curves.png, samples.jpg and report.md in `folder`."""
    from training.experiments.curve_plan import command_line

    folder.mkdir(parents=True, exist_ok=True)
    plot_curves(summary, folder / "curves.png")
    sample_grid(curve, folder / "samples.jpg")
    with atomic_write(folder / "summary.json") as handle:
        json.dump({"curve": summary, "confirmation": confirmed}, handle, indent=2)
    with atomic_write(folder / "report.md") as handle:
        handle.write(render(summary, confirmed, curve, clock, command_line(curve.config, curve.out), "curves.png"))
    log(f"wrote report.md, summary.json, curves.png and samples.jpg to {folder}")
