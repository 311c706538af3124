"""The `classify` verb: train a classifier on a data set and write the bundle the app loads.

Outputs in `--out`: `keras_model.h5`, `labels.txt`, `keras_model.json` (the sidecar: input,
scaling, modality, classes, temperature, the exact command, data and split, test metrics),
`config.json` (the hyperparameters), `splits.csv` (the split used), `history.json`, the
evaluation report under `evaluation/`, and the unfamiliar-image flag
(`keras_model.familiarity.npz`, fitted on the training split as `training/classifier/familiarity.py` does).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.imaging.augmentation import default_config
from retina_desktop.inference.model_files import write_labels, write_sidecar
from training import distribute
from training.classifier.config import RESUMABLE_FIELDS, ClassifierConfig, ClassifyOptions
from training.classifier.trainer import train_classifier
from training.datasets import load_arrays, load_dataset, write_splits
from training.epochs import CheckpointFolder, refuse_changed_config, refuse_changed_data
from training.provenance import this_run
from training.synthetic_images import with_synthetic

MODEL_FILE = "keras_model.h5"
logger = logging.getLogger(__name__)


def write_bundle(out: Path, model, classes: list[str], spec: InputSpec, *, modality: str, name: str, version: str,
                 data: str | Path, config: dict, **facts) -> tuple[Path, ModelMetadata]:
    """The bundle the app loads, in `out` beside its splits.csv: the model file, labels.txt and
    the sidecar, whose provenance names this command, the data, the split's hash, `config` and
    `facts`. Shared by every verb that trains a classifier. Returns (model path, metadata)."""
    model_path = out / MODEL_FILE
    atomic_save(model_path, model.save)
    write_labels(out / "labels.txt", classes)
    metadata = ModelMetadata(
        classes=classes, input=spec, modality=modality, name=name, version=version,
        provenance=this_run(
            data=str(Path(data)),
            splits_sha256=hashlib.sha256((out / "splits.csv").read_bytes()).hexdigest(),
            config=config,
            **facts,
        ),
    )
    write_sidecar(out / "keras_model.json", metadata)
    return model_path, metadata


@dataclass(frozen=True)
class ClassifyResult:
    """What one `classify` call left: the model file, or None when it stopped early as asked or
    was not the process that writes."""

    model_path: Path | None
    epochs_trained: int


def run_classify(options: ClassifyOptions) -> ClassifyResult:
    """Train the classifier `options` describe and write its bundle, evaluation and
    unfamiliar-image flag to `options.out` (or resume one there)."""
    config = options.config
    out = Path(options.out)
    data = str(Path(options.data).resolve())  # however it is spelled, one folder is one string
    if options.resume:
        # Before anything is read or written: a resumed run with other settings would train a
        # model no single command describes, and config.json would then misreport it.
        refuse_changed_resume(out, config, data)
    cluster = distribute.Cluster.from_options(options.coordinator, options.num_processes, options.process_id)
    if cluster is not None and not options.distribute:
        # Each process would otherwise train the whole run alone and write the same --out.
        raise UserError("--coordinator, --num-processes and --process-id (or KERAS_DISTRIBUTION_*) need --distribute")
    if options.distribute:
        logger.info(distribute.use_devices(config.batch_size, cluster).describe())
    # One process of a distributed run writes and reports; the others train alongside it.
    writer = distribute.is_writer()
    say = logger.info if writer else _quiet
    dataset = load_dataset(options.data, group_pattern=options.group_pattern, seed=config.seed)
    spec = config.input_spec()
    say(f"data: {dataset.root} ({len(dataset.samples)} images, classes {dataset.classes})")
    for label, row in dataset.counts().items():
        say(f"  {label:24s} " + "  ".join(f"{k} {v:4d}" for k, v in row.items()))
    real_train = load_arrays(dataset, dataset.subset("train"), spec)
    train = with_synthetic(real_train, config.synthetic, dataset.classes, spec, log=say)
    val = load_arrays(dataset, dataset.subset("val"), spec)
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        write_splits(dataset, out / "splits.csv")
        with atomic_write(out / "config.json") as handle:
            json.dump(config.to_dict(), handle, indent=2)

    model, state = train_classifier(
        config,
        train,
        val,
        len(dataset.classes),
        out,
        default_config(options.modality),
        resume=options.resume,
        stop_after_epochs=options.stop_after,
        data=data,
        log=say,
    )
    if not writer:
        return ClassifyResult(None, state.epoch)
    with atomic_write(out / "history.json") as handle:
        json.dump(state.history, handle, indent=1)
    if options.stop_after is not None and state.epoch < config.epochs and state.wait < config.patience:
        logger.info(f"stopped after epoch {state.epoch} as asked; continue with --resume")
        return ClassifyResult(None, state.epoch)
    logger.info(
        f"training time: {state.seconds / 60:.1f} min for {state.epoch} epochs "
        f"({state.seconds / max(1, state.epoch):.0f} s/epoch); best epoch {state.best_epoch}"
    )
    model_path, metadata = write_bundle(
        out, model, dataset.classes, spec, modality=options.modality, name=options.model_name(dataset.classes),
        version=options.model_version, data=options.data, config=config.to_dict(),
        epochs_trained=state.epoch, best_epoch=state.best_epoch, training_seconds=round(state.seconds, 1),
    )

    from training.evaluation.evaluate import evaluate_bundle  # after training: a long run needs none of it

    evaluate_bundle(model_path, dataset, split="test", out_dir=out / "evaluation", store=True)
    _fit_familiarity(model_path, dataset, real_train, val, metadata.provenance["command"])
    logger.info(f"wrote {model_path}, labels.txt, keras_model.json and evaluation/ to {out}")
    return ClassifyResult(model_path, state.epoch)


def _quiet(*_args, **_kwargs) -> None:
    """What a process of a distributed run other than the first says: nothing."""


def _fit_familiarity(model_path: Path, dataset, train, val, command: str) -> None:
    """The unfamiliar-image flag, from the split images already in memory. A model it cannot
    be fitted for (no convolutional feature maps) is still a model: say so and carry on."""
    from training.classifier.familiarity import fit_for_model, format_summary

    try:
        entry = fit_for_model(model_path, dataset, train=train, val=val, command=f"{command} (at the end of classify)",
                              quiet=True)
    except (UserError, ValueError) as err:
        logger.info(f"no unfamiliar-image flag for this model: {err}")
        return
    logger.info(format_summary(entry))


def refuse_changed_resume(out: Path, config: ClassifierConfig, data: str = "") -> None:
    """Refuse `--resume` into `out` with settings other than those its checkpoint was trained
    with (only `--epochs` and `--patience` may change), on another data folder than `data`, or
    from a checkpoint that cannot be read. Without a checkpoint nothing was trained yet, and the
    run starts afresh with these settings."""
    checkpoint = CheckpointFolder(out / "checkpoint")
    if not checkpoint.state_file.exists():
        return
    config_file = out / "config.json"
    if config_file.exists():
        _refuse_changed_config_file(config_file, config)
    refuse_changed_data(checkpoint.state_file, checkpoint.read_state().data, data)


def _refuse_changed_config_file(config_file: Path, config: ClassifierConfig) -> None:
    try:
        saved = ClassifierConfig.from_dict(json.loads(config_file.read_text()))
    except (ValueError, TypeError) as err:
        raise UserError(
            f'"{config_file}" is not a classifier configuration ({err}); resume needs the one the run wrote'
        ) from err
    refuse_changed_config(config_file, saved, config, may_change=RESUMABLE_FIELDS)
