"""Resumable epoch-by-epoch training for the adversarial trainers (`gan`, `pix2pix`).

What both need to stop at any epoch and resume to the same weights: the state a checkpoint
keeps beyond the weights (`TrainState`), a data stream whose order depends only on (seed,
epoch), a checkpoint folder that is resumed or cleared (`open_checkpoint`), a callback that
writes each epoch's checkpoint atomically, and one that times epochs. A trainer adds its own
callbacks (sample grids, the CSV log) around these.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.atomic import atomic_save, atomic_write
from retina_desktop.errors import UserError
from retina_desktop.quiet import import_keras


@dataclass
class TrainState:
    """What a checkpoint must remember, beyond the weights, to resume exactly."""

    epoch: int = 0  # epochs completed
    seconds: float = 0.0
    history: list[dict] = dataclasses.field(default_factory=list)
    weights: str = ""  # the checkpoint's weights file, relative to the checkpoint folder


def refuse_changed_config(config_file: Path, saved, config, may_change: tuple[str, ...] = ("epochs",)) -> None:
    """`--resume` with other settings than the run's own is refused, naming what differs; only
    the fields in `may_change` (by default `epochs`) may."""
    before, after = saved.to_dict(), config.to_dict()
    changed = [k for k in sorted(before.keys() | after.keys()) if k not in may_change and before.get(k) != after.get(k)]
    if changed:
        details = ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in changed)
        allowed = " and ".join(f"--{k.replace('_', '-')}" for k in may_change)
        raise UserError(
            f'"{config_file}" was trained with other settings than these ({details}); resume with the same '
            f"options (only {allowed} may change) or start a new --out folder"
        )


def epoch_stream(arrays: tuple[np.ndarray, ...], batch_size: int, seed: int, first_epoch: int, epochs: int,
                 balance_by: np.ndarray | None = None):
    """(tf.data stream of batches from epoch `first_epoch` to `epochs`, steps per epoch).

    Each epoch's order depends only on (seed, epoch), so a resumed run sees the batches an
    uninterrupted one would. With `balance_by` (a label per row), each epoch is as many rows
    as the arrays hold, drawn with replacement so that every label is equally often in it.
    """
    import tensorflow as tf

    n = len(arrays[0])
    batch = min(batch_size, n)
    tensors = tuple(tf.constant(a) for a in arrays)

    if balance_by is not None:
        orders = np.stack([balanced_order(balance_by, seed, epoch) for epoch in range(first_epoch, epochs)])
        stream = tf.data.Dataset.from_tensor_slices(orders).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(order).batch(batch, drop_remainder=True))
    else:
        def one_epoch(epoch):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
            return tf.data.Dataset.from_tensor_slices(order).batch(batch, drop_remainder=True)

        stream = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return stream.map(lambda idx: tuple(tf.gather(t, idx) for t in tensors)), n // batch


def balanced_order(labels: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """len(labels) row indices for one epoch, shuffled; a function of (labels, seed, epoch) only.

    Each label's rows are drawn (with replacement) ceil(n / labels) times; trimming the shuffled
    draw to n rows removes fewer than one row per label, so the counts can differ by up to
    (number of labels - 1), not by more.
    """
    rng = np.random.default_rng([seed, epoch, 1])  # 1: a stream of its own, apart from the shuffle's
    classes = np.unique(labels)
    per_class = -(-len(labels) // len(classes))  # ceil, then trimmed to the epoch's length
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class) for c in classes])
    return rng.permutation(rows)[: len(labels)].astype(np.int64)


def open_checkpoint(model, folder: Path, resume: bool, epochs: int, log) -> TrainState:
    """Load the last checkpoint in `folder` into `model` when resuming; else clear old ones."""
    folder.mkdir(parents=True, exist_ok=True)
    state_file = folder / "state.json"
    if resume and state_file.exists():
        state = TrainState(**json.loads(state_file.read_text()))
        model.load_weights(folder / state.weights)
        log(f"resuming after epoch {state.epoch} of {epochs}")
        return state
    for old in folder.glob("epoch-*.weights.h5"):
        old.unlink()
    return TrainState()


def epoch_callbacks(state: TrainState, folder: Path, epochs: int, log) -> list:
    """[the epoch clock, the checkpoint writer] for `fit()`."""
    keras = import_keras()

    class EpochClock(keras.callbacks.Callback):
        """Times each epoch, adds it to the logs (so the CSV log has it) and prints it."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            state.seconds += seconds
            if logs is not None:
                logs["seconds"] = round(seconds, 2)
            left = (epochs - epoch - 1) * state.seconds / max(1, epoch + 1)
            log(f"epoch {epoch + 1}/{epochs}: {seconds:.1f} s "
                f"(total {state.seconds / 60:.1f} min, about {left / 60:.0f} min to go)")

    class Checkpoint(keras.callbacks.Callback):
        """After every epoch: all of the model's weights (optimiser slots and step counters
        included) to a new file, then state.json naming it, then the older file is removed; a
        crash at any point leaves a state.json that names a complete file of the same epoch."""

        def on_epoch_end(self, epoch, logs=None):
            previous = state.weights
            name = f"epoch-{epoch + 1:04d}.weights.h5"
            atomic_save(folder / name, self.model.save_weights)
            state.epoch = epoch + 1
            state.weights = name
            state.history.append({k: float(v) for k, v in (logs or {}).items()} | {"epoch": epoch + 1})
            with atomic_write(folder / "state.json") as handle:
                json.dump(dataclasses.asdict(state), handle, indent=1)
            if previous and previous != name:
                (folder / previous).unlink(missing_ok=True)

    return [EpochClock(), Checkpoint()]
