"""The `pipeline` verb: does GAN augmentation help a scarce class? The experiment of issue #5.

One run folder (`--out`) holds the whole experiment. Two settings: `cut`, where every scarce
class's training images are drawn down to `--scarce-n` (reproducibly, from the train split
only), and `full`. Four conditions: `none`, `traditional` (the augmentation layers of
`retina_desktop.imaging.augmentation`), `gan` (scarce classes topped up with GAN images to the largest
class's count, or `--gan-target`) and `gan+traditional`; each trained once per seed with the
project's own classifier and training loop (`training.classifier.trainer`).

The protocol keeps the comparison honest. Each setting's GAN is trained once (seed 0) on that
setting's training images only, never on an image its classifiers do not see, and its images
are synthesised once and shared by every seed. Validation (early stopping) and test images are
real and untouched; the test split is used for the final figures only.

Layout of the run folder:

    pipeline.json                      the options (a re-run must match them) and the command
    splits.csv, cut.csv                the split used; the training images kept in `cut`
    gan/<setting>/                     generator.keras + .json, trained_on.csv, samples, checkpoint
    synthetic/<setting>/<class>/       the GAN images used (PNG + manifest.csv), and grid.png
    runs/<setting>/<condition>/seed<k>/result.json (+ history.json, test_probs.npz, weights)
    report/                            report.md and its figures (`experiments.report`)

The options and this layout are `experiments.runs`'s, shared with the report. The work is done in
stages, each its own module: the data (`pipeline_data`: the cut, the arrays), the GANs and their
images (`pipeline_gan`), the classifier runs (`pipeline_classifiers`) and the judging beyond the
test split (`pipeline_judging`: the external set, per source); `Experiment` composes them.

Work is resumable at run granularity: a run is finished when its result.json exists (written
last, atomically), and a re-run of the same command skips it. An interrupted classifier or GAN
also continues from its last epoch checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.errors import UserError
from training.experiments.config import SELECTION, PipelineConfig, PipelineOptions
from training.experiments.pipeline_classifiers import ClassifierRuns
from training.experiments.pipeline_data import ExperimentData, samples_fingerprint, write_samples
from training.experiments.pipeline_gan import GanStage
from training.experiments.pipeline_judging import Judging
from training.experiments.report import write_report
from training.experiments.runs import (
    CONFIG_FILE,
    RESULT_FILE,
    command_line,
    option_name,
    planned_runs,
    read_config,
    read_result,
)
from training.provenance import utc_now

logger = logging.getLogger(__name__)


# --- the run folder ------------------------------------------------------------------------


def start_or_check(out: Path, config: PipelineConfig, dataset) -> dict:
    """Create pipeline.json, or refuse when the folder was started with other options."""
    from training.datasets import write_splits

    fingerprint = samples_fingerprint(dataset.samples)
    path = out / CONFIG_FILE
    if path.exists():
        saved, stored = read_config(out)
        differ = [
            f"{option_name(f)} {_show(getattr(saved, f))} (now {_show(getattr(config, f))})"
            for f in (field.name for field in dataclasses.fields(config))
            if f not in SELECTION and f != "data" and getattr(saved, f) != getattr(config, f)
        ]
        if stored.get("data_fingerprint") != fingerprint:
            differ.append(f"--data {saved.data} (its files, labels or splits differ from {config.data})")
        if differ:
            raise UserError(
                f'"{out}" was started with other options: {"; ".join(differ)}. Re-run with the same '
                f"options (only {', '.join(option_name(f) for f in SELECTION)} may change) or choose a new --out"
            )
        stored["config"] = dataclasses.replace(saved, **{f: getattr(config, f) for f in SELECTION}).to_dict()
        stored["command"] = command_line(config, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_splits(dataset, out / "splits.csv")
        stored = {
            "config": config.to_dict(),
            "data_fingerprint": fingerprint,
            "command": command_line(config, out),
            "started_at": utc_now(),
        }
    with atomic_write(path) as handle:
        json.dump(stored, handle, indent=2)
    return stored


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


class Experiment:
    """The stages of one run folder, each preparing its part once and keeping it: the data, the
    GANs and their images, the classifier runs, and their judging beyond the test split."""

    def __init__(self, out: Path, config: PipelineConfig, dataset, log=logger.info):
        self.data = ExperimentData(config, dataset)
        self.gans = GanStage(out, self.data, log)
        self.judging = Judging(self.data)
        self.runs = ClassifierRuns(out, self.data, self.gans, self.judging, log)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def run_all(out: Path, config: PipelineConfig, dataset, log=logger.info) -> list[dict]:
    """Every planned run not yet finished, in order, with progress and an ETA."""
    experiment = Experiment(out, config, dataset, log)
    write_samples(out / "cut.csv", experiment.data.cut)
    runs = planned_runs(config)
    done = [k for k in runs if (k.folder(out) / RESULT_FILE).exists()]
    log(f"{len(runs)} runs planned ({len(done)} already finished, skipped) in {out}")
    seconds: list[float] = []
    results = []
    for i, key in enumerate(runs, start=1):
        existing = read_result(out, key)
        if existing is not None:
            results.append(existing)
            continue
        if "gan" in key.condition:
            experiment.gans.synthetic(key.setting)  # trains the setting's GAN first if need be
        started = time.perf_counter()
        result = experiment.runs.run_one(key, prefix=f"[{i}/{len(runs)}] ")
        seconds.append(time.perf_counter() - started)
        left = [k for k in runs[i:] if not (k.folder(out) / RESULT_FILE).exists()]
        gans_left = {k.setting for k in left if "gan" in k.condition
                     and not (experiment.gans.folder(k.setting) / "generator.keras").exists()}
        log(f"[{i}/{len(runs)}] {key} done in {_duration(seconds[-1])}: scarce sensitivity "
            f"{result['scarce_sensitivity']:.3f}, macro F1 {result['macro_f1']:.3f}, macro AUC "
            f"{result['macro_auc']:.3f}; {len(left)} runs left, ETA {_duration(np.mean(seconds) * len(left))}"
            + (f" plus the GAN of {', '.join(sorted(gans_left))}" if gans_left else ""))
        results.append(result)
    return results


def run_pipeline(options: PipelineOptions) -> Path:
    """`python -m training pipeline ...`: run (or resume) the experiment, then write the report;
    with `--report-only` rebuild the report alone. Returns the report's file."""
    out = Path(options.out)
    docs = Path(options.docs) if options.docs else None
    copied = f" and copied it to {options.docs}" if options.docs else ""
    if options.report_only:
        config, stored = read_config(out)
        report = write_report(out, config, stored, docs=docs)
        logger.info(f"wrote {report}{copied}")
        return report
    config = options.config
    from training.datasets import load_dataset

    dataset = load_dataset(config.data)
    stored = start_or_check(out, config, dataset)
    if config.gan_size < config.size and any("gan" in c for c in config.conditions):
        logger.warning(f"warning: GAN images ({config.gan_size} px) are enlarged to the classifier's {config.size} px, "
                       "so they are blurrier than real ones: a difference the classifier can learn. "
                       "Prefer --gan-size >= --size.")
    logger.info(f"data: {dataset.root} ({len(dataset.samples)} images, classes {dataset.classes}); "
                f"scarce: {', '.join(config.scarce)}; on {platform.machine()} with {os.cpu_count()} CPUs")
    started = time.perf_counter()
    run_all(out, config, dataset)
    report = write_report(out, config, stored, docs=docs)
    logger.info(f"finished in {_duration(time.perf_counter() - started)}; wrote {report}{copied}")
    return report
