"""Classifier resume: an interrupted run, resumed, ends with exactly the weights of one that
was not interrupted, a crash between checkpoint writes leaves a checkpoint that resumes, and so
does a checkpoint in the format written before every trainer shared one (a whole saved trainer)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.imaging.augmentation import default_config
from training import epochs as epochs_module
from training.classifier.config import ClassifierConfig
from training.classifier.trainer import build_trainer, train_classifier
from training.epochs import TrainState

# Everything that draws random numbers is on: augmentation layers, dropout, camera
# augmentation and class-balanced epochs, as the fundus runs use them.
CONFIG = ClassifierConfig(
    height=32, width=32, width_multiplier=0.25, epochs=4, batch_size=8, patience=10,
    augment=True, camera_augment=True, epoch_size=16, dropout=0.3, seed=5,
)


def _arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = rng.integers(0, 60, (n, 32, 32, 3)).astype(np.uint8)
    images[labels == 1, 8:24, 8:24] += 150
    return images, labels.astype(np.int32)


TRAIN, VAL = _arrays(24, 0), _arrays(8, 1)

# Each test trains (and retraces) a classifier for half a minute or more: CI runs them (-m slow).
pytestmark = pytest.mark.slow


def _train(out: Path, **kwargs):
    return train_classifier(CONFIG, TRAIN, VAL, 2, out, default_config("fundus"), log=lambda *_: None, **kwargs)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """(best model's weights, state, every checkpoint variable) of an uninterrupted run; tracing
    the training step is most of a tiny run's time, so both tests share one."""
    out = tmp_path_factory.mktemp("straight")
    model, state = _train(out)
    return model.get_weights(), state, _checkpoint_weights(out)


def _checkpoint_weights(out: Path) -> list[np.ndarray]:
    """Every variable of the last checkpoint's trainer: network, optimizer slots, step count."""
    folder = out / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    trainer, _ = build_trainer(CONFIG, 2, default_config("fundus"))
    trainer.load_weights(folder / state["weights"])
    return [np.asarray(v) for v in trainer.weights + trainer.optimizer.variables]


def _assert_identical(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)]
    assert not differ, f"{len(differ)} of {len(a)} arrays differ"


def test_resume_reaches_the_uninterrupted_weights_bit_for_bit(tmp_path, straight):
    straight_weights, straight_state, straight_checkpoint = straight
    _, stopped = _train(tmp_path / "resumed", stop_after_epochs=2)
    assert stopped.epoch == 2
    resumed, resumed_state = _train(tmp_path / "resumed", resume=True)
    assert resumed_state.epoch == 4
    assert [h["loss"] for h in resumed_state.history] == [h["loss"] for h in straight_state.history]
    _assert_identical(straight_weights, resumed.get_weights())
    _assert_identical(straight_checkpoint, _checkpoint_weights(tmp_path / "resumed"))


def test_a_crash_between_the_checkpoint_writes_resumes_consistently(tmp_path, monkeypatch, straight):
    """Killed after epoch 2's weights are written but before the state that names them: the
    checkpoint on disk is still epoch 1's, whole, and resuming from it ends as an
    uninterrupted run does."""
    straight_weights, _, straight_checkpoint = straight
    real_atomic_write = epochs_module.atomic_write
    written = []

    def crash_on_second_state(path, *args, **kwargs):
        if Path(path).name == "state.json":
            written.append(path)
            if len(written) == 2:
                raise KeyboardInterrupt  # as SIGKILL would, between the weights and the state
        return real_atomic_write(path, *args, **kwargs)

    monkeypatch.setattr(epochs_module, "atomic_write", crash_on_second_state)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "resumed")
    monkeypatch.setattr(epochs_module, "atomic_write", real_atomic_write)
    folder = tmp_path / "resumed" / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    assert state["epoch"] == 1
    resumed, resumed_state = _train(tmp_path / "resumed", resume=True)
    assert resumed_state.epoch == 4
    _assert_identical(straight_weights, resumed.get_weights())
    _assert_identical(straight_checkpoint, _checkpoint_weights(tmp_path / "resumed"))
    # Only the files the state names are left behind.
    names = {p.name for p in folder.iterdir()}
    final = json.loads((folder / "state.json").read_text())
    assert names == {"state.json", final["weights"], final["best"]}
    assert set(final) == {f.name for f in dataclasses.fields(TrainState)}  # the format every trainer writes


def test_a_checkpoint_in_the_format_before_the_shared_loop_resumes(tmp_path, straight):
    """States that named a whole saved trainer (`trainer`, a .keras file), from before the
    classifier shared the other trainers' checkpoint format, resume to the same weights."""
    straight_weights, _, straight_checkpoint = straight
    _train(tmp_path / "old", stop_after_epochs=2)
    folder = tmp_path / "old" / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    trainer, _ = build_trainer(CONFIG, 2, default_config("fundus"))
    trainer.load_weights(folder / state.pop("weights"))
    trainer.save(folder / "trainer-epoch-0002.keras")
    (folder / "epoch-0002.weights.h5").unlink()
    state["trainer"] = "trainer-epoch-0002.keras"
    (folder / "state.json").write_text(json.dumps(state))
    resumed, resumed_state = _train(tmp_path / "old", resume=True)
    assert resumed_state.epoch == 4
    _assert_identical(straight_weights, resumed.get_weights())
    _assert_identical(straight_checkpoint, _checkpoint_weights(tmp_path / "old"))
    assert not list(folder.glob("*.keras"))  # the old trainer file went with its epoch
