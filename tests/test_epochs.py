"""The resumable loop every trainer shares (training/epochs.py): one state format, a checkpoint
folder that resumes or clears, atomic per-epoch checkpoints, the epoch line and the refusal of
changed settings, on a one-layer model (the trainers' own exact resumes: test_resume.py,
test_gan.py, test_pix2pix.py)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from training import epochs as epochs_module
from training.epochs import CheckpointFolder, TrainState, epoch_callbacks


@dataclass(frozen=True)
class ToyConfig:
    units: int = 2
    epochs: int = 3

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ToyConfig:
        return cls(**data)


def _model(seed: int):
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _fit(model, state, checkpoint, first: int, last: int, lines: list[str]) -> None:
    x = np.arange(12, dtype="float32").reshape(4, 3) / 10
    y = np.ones((4, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=last, initial_epoch=first, shuffle=False, verbose=0,
              callbacks=epoch_callbacks(state, checkpoint, last, lines.append))


def _all_weights(model) -> list[np.ndarray]:
    return [np.asarray(v) for v in model.weights + model.optimizer.variables]


def test_each_epoch_leaves_one_state_naming_the_files_of_that_epoch(tmp_path):
    checkpoint = CheckpointFolder(tmp_path / "checkpoint")
    model = _model(0)
    state = checkpoint.open(model, ToyConfig(), resume=False)
    lines: list[str] = []
    _fit(model, state, checkpoint, 0, 2, lines)
    saved = json.loads(checkpoint.state_file.read_text())
    assert set(saved) == {f.name for f in dataclasses.fields(TrainState)}  # one format for every trainer
    assert saved["epoch"] == 2 and saved["weights"] == "epoch-0002.weights.h5"
    assert saved["config"] == ToyConfig().to_dict()
    assert [h["epoch"] for h in saved["history"]] == [1, 2] and {"loss", "seconds"} <= set(saved["history"][0])
    assert sorted(p.name for p in checkpoint.folder.iterdir()) == ["epoch-0002.weights.h5", "state.json"]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"] and "min to go" in lines[0]

    # Resumed into a freshly built model: every variable, optimiser slots and step count too.
    fresh = _model(1)
    resumed = CheckpointFolder(tmp_path / "checkpoint").open(fresh, ToyConfig(epochs=5), resume=True)
    assert resumed.epoch == 2 and resumed.config["epochs"] == 5
    for a, b in zip(_all_weights(model), _all_weights(fresh)):
        assert np.array_equal(a, b)


def test_a_crash_before_the_state_is_written_leaves_the_previous_epoch_whole(tmp_path, monkeypatch):
    checkpoint = CheckpointFolder(tmp_path)
    model = _model(0)
    state = checkpoint.open(model, ToyConfig(), resume=False)
    _fit(model, state, checkpoint, 0, 1, [])
    after_one = _all_weights(model)
    real_atomic_write = epochs_module.atomic_write

    def killed(path, *args, **kwargs):
        raise KeyboardInterrupt  # as SIGKILL would, after the weights and before the state

    monkeypatch.setattr(epochs_module, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        _fit(model, state, checkpoint, 1, 2, [])
    monkeypatch.setattr(epochs_module, "atomic_write", real_atomic_write)
    fresh = _model(1)
    resumed = CheckpointFolder(tmp_path).open(fresh, ToyConfig(), resume=True)
    assert resumed.epoch == 1
    for a, b in zip(after_one, _all_weights(fresh)):
        assert np.array_equal(a, b)
    # The next checkpoint removes the file no state named.
    _fit(fresh, resumed, checkpoint, 1, 3, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0003.weights.h5", "state.json"]


def test_a_run_that_does_not_resume_clears_the_old_checkpoint_state_first(tmp_path):
    checkpoint = CheckpointFolder(tmp_path)
    model = _model(0)
    _fit(model, checkpoint.open(model, ToyConfig(), resume=False), checkpoint, 0, 1, [])
    (tmp_path / ".state.json.abc.tmp").write_text("{")  # left by a kill during a write
    state = checkpoint.open(_model(0), ToyConfig(), resume=False)
    assert state.epoch == 0 and not list(tmp_path.iterdir())
    # Resuming where there is nothing to resume starts afresh too.
    assert CheckpointFolder(tmp_path / "new").open(_model(0), ToyConfig(), resume=True).epoch == 0


def test_resume_with_other_settings_is_refused_naming_them(tmp_path):
    checkpoint = CheckpointFolder(tmp_path)
    model = _model(0)
    _fit(model, checkpoint.open(model, ToyConfig(), resume=False), checkpoint, 0, 1, [])
    with pytest.raises(UserError, match=r"units 2 -> 4\).*only --epochs may change") as refused:
        checkpoint.open(_model(0), ToyConfig(units=4, epochs=9), resume=True)
    assert str(checkpoint.state_file) in str(refused.value)
    assert checkpoint.open(_model(0), ToyConfig(units=4), resume=True, may_change=("epochs", "units")).epoch == 1


def test_states_of_older_classifier_checkpoints_read_as_the_one_format():
    per_epoch = TrainState.from_dict({"epoch": 3, "best_score": 0.8, "best_epoch": 2, "wait": 1, "history": [],
                                      "seconds": 9.0, "trainer": "trainer-epoch-0003.keras",
                                      "best": "best-epoch-0002.weights.h5", "config": {}})
    assert per_epoch.weights == "trainer-epoch-0003.keras" and per_epoch.best == "best-epoch-0002.weights.h5"
    fixed_names = TrainState.from_dict({"epoch": 3, "best_score": 0.8, "best_epoch": 2, "wait": 1, "history": [],
                                        "seconds": 9.0})
    assert (fixed_names.weights, fixed_names.best) == ("trainer.keras", "best.weights.h5")
    adversarial = TrainState.from_dict({"epoch": 1, "seconds": 2.0, "history": [], "weights": "epoch-0001.weights.h5"})
    assert adversarial.weights == "epoch-0001.weights.h5" and adversarial.best == "" and adversarial.config == {}


def _one_epoch_checkpoint(folder) -> CheckpointFolder:
    checkpoint = CheckpointFolder(folder)
    model = _model(0)
    _fit(model, checkpoint.open(model, ToyConfig(), resume=False), checkpoint, 0, 1, [])
    return checkpoint


def test_resume_from_a_truncated_state_is_one_line_naming_it(tmp_path):
    # Issue #34 item 16: a cut state.json made --resume end in a JSONDecodeError traceback.
    checkpoint = _one_epoch_checkpoint(tmp_path)
    text = checkpoint.state_file.read_text()
    checkpoint.state_file.write_text(text[: len(text) // 2])
    with pytest.raises(UserError) as refused:
        checkpoint.open(_model(0), ToyConfig(), resume=True)
    message = str(refused.value)
    assert message.startswith(f'"{checkpoint.state_file}" cannot be read') and "\n" not in message
    assert "without --resume" in message and "restore" in message


def test_resume_without_the_checkpoint_weights_is_one_line_naming_them(tmp_path):
    # Issue #34 item 16: a deleted weights file made --resume end in an h5py traceback.
    checkpoint = _one_epoch_checkpoint(tmp_path)
    weights = tmp_path / "epoch-0001.weights.h5"
    weights.unlink()
    with pytest.raises(UserError) as refused:
        checkpoint.open(_model(0), ToyConfig(), resume=True)
    message = str(refused.value)
    assert message.startswith(f'"{weights}" is missing') and str(checkpoint.state_file) in message
    assert "without --resume" in message and "restore" in message and "\n" not in message
    assert checkpoint.state_file.exists()  # nothing is cleared by a refused resume


def test_resume_on_other_data_is_refused_naming_both(tmp_path):
    # Issue #34 item 15: the data folder is recorded with the state; a resume on another is refused.
    checkpoint = CheckpointFolder(tmp_path)
    model = _model(0)
    _fit(model, checkpoint.open(model, ToyConfig(), resume=False, data="/data/a"), checkpoint, 0, 1, [])
    assert json.loads(checkpoint.state_file.read_text())["data"] == "/data/a"
    with pytest.raises(UserError) as refused:
        checkpoint.open(_model(0), ToyConfig(), resume=True, data="/data/b")
    message = str(refused.value)
    assert "/data/a" in message and "/data/b" in message and "\n" not in message
    assert checkpoint.open(_model(0), ToyConfig(), resume=True, data="/data/a").epoch == 1
