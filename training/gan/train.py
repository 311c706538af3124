"""The `gan` verb: train the class-conditional GAN on a data set's training split.

Outputs in `--out`: `generator.keras` (the EMA generator: latent + label in, image in [-1, 1]
out), `generator.json` (its sidecar: classes, size, latent size, modality, the command, data,
time per epoch and in total, the hyperparameters), `config.json` (the hyperparameters),
`samples/epoch_NNNN.png` (one grid per epoch, a row per class), `losses.csv`,
`checkpoint/` for `--resume`, and with `--keep-generators` `generators/epoch_NNNN.keras` (+ .json).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras
from retina_desktop.inference.sidecars import CONDITIONAL
from training.datasets import display_aspect, load_arrays, load_dataset
from training.epochs import CheckpointFolder, TrainState, refuse_changed_config
from training.gan.config import GanConfig, GanOptions
from training.gan.trainer import CHECKPOINT_FOLDER, train_gan
from training.provenance import this_run

logger = logging.getLogger(__name__)
GENERATOR_FILE = "generator.keras"


def choose_labels(classes: list[str], wanted: str | None) -> list[str]:
    """The labels to train on, in the data set's order; all of them when `wanted` is empty."""
    if not wanted:
        return list(classes)
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    missing = [n for n in names if n not in classes]
    if missing:
        raise UserError(f"--labels {', '.join(missing)}: not a class of the data set (classes: {', '.join(classes)})")
    return [c for c in classes if c in names]


FIT_FILE = "fit.json"  # how the training images were fitted: not a GanConfig field, yet a resume must keep it


def refuse_changed_fit(out: Path, fit: str) -> None:
    """`--resume` with another `--fit` would go on training on differently framed images."""
    record = out / FIT_FILE
    if not record.exists():  # a run started before fit.json was written: nothing to compare
        return
    saved = json.loads(record.read_text())["fit"]
    if saved != fit:
        raise UserError(f'"{out}" was trained on images fitted with --fit {saved}; resume with '
                        f"--fit {saved} or start a new --out folder")


def run_gan(options: GanOptions) -> TrainState:
    """`gan`: train the generator `options` describe on the data set's training split (or resume
    it) and write it with its sidecar; returns where training stands."""
    out = Path(options.out)
    dataset = load_dataset(options.data, seed=options.config.seed)
    labels = choose_labels(dataset.classes, options.wanted_labels)
    config = dataclasses.replace(options.config, labels=tuple(labels))
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / "config.json"
    if options.resume and config_file.exists():
        refuse_changed_config(config_file, GanConfig.from_dict(json.loads(config_file.read_text())), config)
        refuse_changed_fit(out, options.fit)
    resuming = options.resume and CheckpointFolder(out / CHECKPOINT_FOLDER).state_file.exists()
    if config.init_generator and not resuming:  # before minutes of decoding, not after
        from training.gan.warm_start import check_source_generator

        check_source_generator(config.init_generator, labels, config.size, config.latent_dim)
    samples = [s for s in dataset.subset("train") if s.label in labels]
    images, indices = load_arrays(dataset, samples, options.input_spec())
    # The data set's class indices -> positions in `labels`, the generator's label indices.
    remap = np.array([labels.index(c) if c in labels else -1 for c in dataset.classes])
    targets = remap[indices].astype(np.int32)
    counts = {label: int(np.sum(targets == i)) for i, label in enumerate(labels)}
    logger.info(f"data: {dataset.root}, train split: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if min(counts.values()) == 0:
        raise UserError(f"No training images for {[k for k, v in counts.items() if not v]} in {dataset.root}")
    with atomic_write(config_file) as handle:
        json.dump(config.to_dict(), handle, indent=2)
    with atomic_write(out / FIT_FILE) as handle:
        json.dump({"fit": options.fit}, handle)

    aspect = display_aspect(dataset, samples, options.fit)

    def sidecar(epochs_trained: int, seconds: float | None) -> dict:
        return generator_sidecar(config, counts, aspect, epochs_trained, seconds, modality=options.modality,
                                 fit=options.fit, data=options.data)

    kept = (KeepGenerators(out / KEPT_FOLDER, sidecar),) if options.keep_generators else ()
    if options.distribute:
        from training.distribute import use_devices

        logger.info(use_devices(config.batch_size).describe())
    gan, state = train_gan(config, images, targets, out, resume=options.resume, stop_after_epochs=options.stop_after,
                           epoch_callbacks_before_checkpoint=kept)
    if state.epoch < config.epochs:
        logger.info(f"stopped after epoch {state.epoch} as asked; continue with --resume")
        return state
    per_epoch = state.seconds / max(1, state.epoch)
    logger.info(f"training time: {state.seconds / 60:.1f} min for {state.epoch} epochs ({per_epoch:.1f} s/epoch)")
    save_generator(gan.ema_generator, out / GENERATOR_FILE, sidecar(state.epoch, state.seconds))
    logger.info(f"wrote {out / GENERATOR_FILE}, generator.json, samples/ and losses.csv to {out}")
    return state


def generator_sidecar(config: GanConfig, counts: dict, aspect: float, epochs_trained: int, seconds: float | None,
                      *, modality: str, fit: str, data: str) -> dict:
    """What a generator file needs beside it: its classes and geometry for `synthesize` and the
    app, and how it was made (`seconds`, the training time, where known)."""
    timing = {} if seconds is None else {
        "seconds_per_epoch": round(seconds / max(1, epochs_trained), 2),
        "training_seconds": round(seconds, 1),
    }
    return {
        "kind": CONDITIONAL,
        "description": "conditional generator (EMA weights)",
        "classes": list(config.labels),
        "size": config.size,
        "latent_dim": config.latent_dim,
        "modality": modality,
        "fit": fit,
        "display_aspect": aspect,
        "inputs": {"latent": "standard normal (n, latent_dim) float32", "label": "(n,) int32 index into classes"},
        "output": "(n, size, size, 3) in [-1, 1]; uint8 RGB = round((x + 1) * 127.5)",
        "note": "synthetic images: model output for augmentation and demonstration, not patient data",
        "provenance": this_run(
            data=str(Path(data)),
            train_images=counts,
            config=config.to_dict(),
            epochs_trained=epochs_trained,
            **timing,
        ),
    }


def save_generator(generator, path: Path, sidecar: dict) -> None:
    """`path` and its sidecar `path.json`, each written atomically."""
    atomic_save(path, generator.save)
    with atomic_write(path.with_suffix(".json")) as handle:
        json.dump(sidecar, handle, indent=2)


KEPT_FOLDER = "generators"


class KeepGenerators(import_keras().callbacks.Callback):
    """`--keep-generators`: the EMA generator of every epoch, `generators/epoch_NNNN.keras` with
    its sidecar. A GAN's quality wanders from epoch to epoch (KIDs moved threefold between
    checkpoints 14 epochs apart), so the epoch to ship is chosen by `gan-eval --split val`
    over these, not taken to be the last."""

    def __init__(self, folder: Path, sidecar):
        super().__init__()
        self.folder, self.sidecar = folder, sidecar

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        # No training time: a resumed run's clock is not this callback's to read.
        sidecar = self.sidecar(epoch + 1, None)
        save_generator(self.model.ema_generator, self.folder / f"epoch_{epoch + 1:04d}.keras", sidecar)

