"""Resumable epoch-by-epoch training: the one loop every trainer (classifier, GAN, pix2pix) runs.

Every trainer is one `fit()` over a data stream whose order depends only on (seed, epoch), with
callbacks doing the per-epoch work, so that a run can stop after any epoch and resume to the same
weights, bit for bit. This module owns what they share:

- `TrainState`: what a checkpoint keeps beyond the weights, in one state.json format for all;
- `CheckpointFolder`: resumes a checkpoint folder (refusing changed settings) or clears it, and
  writes each epoch's checkpoint atomically;
- `last_epoch_of_call`: where a resumed run picks up, and where this call stops;
- `epoch_callbacks`: the epoch clock (its time in the logs, its line in the log) and the
  checkpoint writer, which a trainer puts around callbacks of its own (the classifier's
  validation and early stopping, the GANs' sample grids and CSV logs);
- `epoch_stream`, `balanced_order`: the (seed, epoch)-ordered batches of the adversarial trainers.

Why callbacks of one `fit()` rather than a loop of our own around one-epoch fits: Keras's fit
already is an epoch loop with hooks, so each trainer's own work sits in the same callback list as
the shared clock and checkpoint, in the order it must run (validation before the line that
reports it, everything before the checkpoint that records it), and there is one loop to trust
instead of one per trainer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras, keras_backend
from training import distribute

# The best weights' name in the classifier's checkpoints from before files were named per epoch.
LEGACY_BEST = "best.weights.h5"


@dataclass
class TrainState:
    """What a checkpoint must remember, beyond the weights, to resume exactly; one format for
    every trainer."""

    epoch: int = 0  # epochs completed
    seconds: float = 0.0
    history: list[dict] = dataclasses.field(default_factory=list)  # each epoch's logs
    # The checkpoint's weights file, relative to the checkpoint folder. Each epoch writes a new
    # one and then this state naming it, so a crash at any point leaves a state and files of
    # one epoch.
    weights: str = ""
    config: dict = dataclasses.field(default_factory=dict)  # the run's hyperparameters
    # The data folder trained on (resolved), where the trainer says: a resume on other images
    # would train a model no single command describes. Empty in older states.
    data: str = ""
    # Early stopping, for trainers that judge each epoch (the classifier, by val macro AUC);
    # the others leave these as they are.
    best_score: float = -math.inf
    best_epoch: int = -1
    wait: int = 0  # epochs since the best one
    best: str = ""  # the best epoch's weights file

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        """A saved state. The classifier's states from before this format named a whole saved
        trainer (`trainer`, a .keras file that load_weights reads too) instead of `weights`,
        and the oldest ones fixed names for both files."""
        data = dict(data)
        if "weights" not in data and "best_score" in data:
            data["weights"] = data.pop("trainer", "") or "trainer.keras"
            data["best"] = data.get("best") or LEGACY_BEST
        return cls(**data)


class CheckpointFolder:
    """One run's checkpoint folder: state.json naming the weights of one epoch (and of the
    best epoch, where a trainer keeps one), beside them."""

    # Files of ours in the folder: weights (whole saved trainers in older classifier
    # checkpoints) and what a kill left of an atomic write (".state.json.XXXX.tmp").
    OWN_FILES = ("*.weights.h5", "*.keras", ".state.json.*")

    def __init__(self, folder: Path):
        self.folder = folder
        self.state_file = folder / "state.json"

    def open(self, model, config, *, resume: bool, may_change: tuple[str, ...] = ("epochs",),
             data: str = "") -> TrainState:
        """With `resume` and a checkpoint here: its state, its weights loaded into `model` (all
        of them: optimiser slots and step counters too). `config` must equal the run's own but
        for the fields in `may_change`, and is recorded from here on; so must `data` (the
        resolved data folder, where the trainer passes one). Otherwise a fresh state for
        `config` and `data`, and any older checkpoint here removed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if resume and self.state_file.exists():
            state = self.read_state()
            if not (self.folder / state.best).is_file():
                state.best = ""  # an older classifier checkpoint that had no best file yet
            if state.config:  # states from before the config was kept in them cannot say
                refuse_changed_config(self.state_file, type(config).from_dict(state.config), config, may_change)
            refuse_changed_data(self.state_file, state.data, data)
            state.config = config.to_dict()  # the new epochs (or patience), from here on
            state.data = data or state.data
            try:
                model.load_weights(self.folder / state.weights)
            except OSError as err:  # h5py's word for a cut or damaged file
                raise UserError(
                    f'"{self.folder / state.weights}" cannot be read ({err}); restore it, or start '
                    "without --resume (which clears the checkpoint)"
                ) from err
            return state
        if distribute.is_writer():  # one process of a distributed run clears and writes
            self.state_file.unlink(missing_ok=True)  # first: no state may name a file removed below
            self._remove_files_except(())
        return TrainState(config=config.to_dict(), data=data)

    def read_state(self) -> TrainState:
        """The checkpoint's state, its weights file known to be there; a state that cannot be
        read, or names a file that is gone, is one line saying which and what to do (a resume
        needs both, and a traceback helps no one who deleted or cut a file)."""
        try:
            state = TrainState.from_dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError) as err:  # JSONDecodeError is a ValueError
            raise UserError(
                f'"{self.state_file}" cannot be read ({err}); start without --resume (which clears '
                "the checkpoint), or restore the file"
            ) from err
        weights = self.folder / state.weights
        if not state.weights or not weights.is_file():
            raise UserError(
                f'"{weights}" is missing, and the checkpoint "{self.state_file}" needs it; restore '
                "it, or start without --resume (which clears the checkpoint)"
            )
        return state

    def save_best(self, model, state: TrainState, epoch: int) -> None:
        """`model`'s weights as those of the best epoch so far (`epoch`, counted from 1). The
        previous best stays until the next checkpoint's state no longer names it."""
        state.best = f"best-epoch-{epoch:04d}.weights.h5"
        distribute.save_weights(self.folder / state.best, model.save_weights)

    def write(self, model, state: TrainState) -> None:
        """The checkpoint after epoch `state.epoch`: `model`'s weights (optimiser slots and step
        counters included) to a file of that epoch, then the state naming it (one rename: the
        moment the checkpoint changes epoch), then the files no state names any more."""
        state.weights = f"epoch-{state.epoch:04d}.weights.h5"
        distribute.save_weights(self.folder / state.weights, model.save_weights)
        if not distribute.is_writer():
            return
        with atomic_write(self.state_file) as handle:
            json.dump(dataclasses.asdict(state), handle, indent=1)
        self._remove_files_except({state.weights, state.best})

    def _remove_files_except(self, keep) -> None:
        for pattern in self.OWN_FILES:
            for old in self.folder.glob(pattern):
                if old.name not in keep:
                    old.unlink(missing_ok=True)


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


def refuse_changed_data(state_file: Path, saved: str, data: str) -> None:
    """`--resume` on another data folder than the checkpoint's is refused, naming both (a state
    that recorded none, or a trainer that passes none, cannot say, and resumes)."""
    if saved and data and saved != data:
        raise UserError(
            f'"{state_file}" was trained on "{saved}", not "{data}"; resume with --data "{saved}" '
            "or start a new --out folder"
        )


def last_epoch_of_call(state: TrainState, epochs: int, stop_after_epochs: int | None, log, detail: str = "") -> int:
    """The epoch this call trains up to, after telling `log` where a resumed run picks up
    (`detail` adds what the trainer knows of it). `stop_after_epochs` ends the call early as if
    it were interrupted, which is how the tests of resume interrupt a run."""
    if state.epoch:
        log(f"resuming after epoch {state.epoch} of {epochs}{detail}")
    return epochs if stop_after_epochs is None else min(epochs, stop_after_epochs)


def epoch_callbacks(state: TrainState, checkpoint: CheckpointFolder, epochs: int, log, describe=None) -> list:
    """[the epoch clock, the checkpoint writer] for `fit()`; a trainer's callbacks whose logs
    the line or the checkpoint should have go before them.

    Each epoch's line is "epoch N/`epochs`: " and then `describe(seconds, logs)`, or by
    default the epoch's time and an estimate of the time left.
    """
    keras = import_keras()

    class EpochClock(keras.callbacks.Callback):
        """Times each epoch, adds it to the logs (so the CSV log and the history have it) and
        logs the epoch's line."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            state.seconds += seconds
            if logs is not None:
                logs["seconds"] = round(seconds, 2)
            if describe is not None:
                told = describe(seconds, logs or {})
            else:
                left = (epochs - epoch - 1) * state.seconds / max(1, epoch + 1)
                told = f"{seconds:.1f} s (total {state.seconds / 60:.1f} min, about {left / 60:.0f} min to go)"
            log(f"epoch {epoch + 1}/{epochs}: {told}")

    class Checkpoint(keras.callbacks.Callback):
        """After every epoch: its logs to the history, and the checkpoint (`CheckpointFolder.write`)."""

        def on_epoch_end(self, epoch, logs=None):
            state.epoch = epoch + 1
            state.history.append({k: float(v) for k, v in (logs or {}).items()} | {"epoch": epoch + 1})
            checkpoint.write(self.model, state)

    return [EpochClock(), Checkpoint()]


def epoch_stream(arrays: tuple[np.ndarray, ...], batch_size: int, seed: int, first_epoch: int, epochs: int,
                 balance_by: np.ndarray | None = None):
    """(stream of batches from epoch `first_epoch` to `epochs`, steps per epoch): a tf.data stream
    under TensorFlow, the numpy batches themselves under another backend (JAX).

    Each epoch's order depends only on (seed, epoch), so a resumed run sees the batches an
    uninterrupted one would. With `balance_by` (a label per row), each epoch is as many rows
    as the arrays hold, drawn with replacement so that every label is equally often in it.
    Without it, TensorFlow shuffles with its own stateless shuffle and JAX runs with numpy's
    (the two cannot draw the same order).
    """
    n = len(arrays[0])
    batch = min(batch_size, n)
    if keras_backend() != "tensorflow":
        def batches():
            for epoch in range(first_epoch, epochs):
                order = (balanced_order(balance_by, seed, epoch) if balance_by is not None
                         else np.random.default_rng([seed, epoch]).permutation(n))
                for start in range(0, n - batch + 1, batch):
                    rows = order[start:start + batch]
                    yield tuple(a[rows] for a in arrays)

        return batches(), n // batch
    import tensorflow as tf

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
