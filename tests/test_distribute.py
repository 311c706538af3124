"""`--distribute`'s bookkeeping around Keras's engine (training/distribute.py), without JAX: what
the options and Keras's variables describe, each process's rows of a global batch, and one
line for what cannot run. The runs themselves are tests/test_backends.py's (slow)."""

from __future__ import annotations

import pytest

from retina_desktop.core.errors import UserError
from training import distribute
from training.distribute import Cluster, Placement


def test_one_process_unless_told():
    assert Cluster.from_options(None, None, None, environ={}) is None


def test_the_options_or_kerass_variables_describe_the_cluster():
    assert Cluster.from_options("10.0.0.1:1234", 2, 1, environ={}) == Cluster("10.0.0.1:1234", 2, 1)
    environ = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:2345",
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}
    assert Cluster.from_options(None, None, None, environ=environ) == Cluster("10.0.0.1:1234", 2, 1)
    assert Cluster.from_options(None, None, 0, environ=environ).process_id == 0  # an option wins


@pytest.mark.parametrize(("options", "message"), [
    (("10.0.0.1:1234", 2, None), "all three"),
    (("10.0.0.1", 2, 0), "needs a port"),
    (("10.0.0.1:1234", 2, 2), "one of 0..1"),
])
def test_half_a_cluster_is_one_line(options, message):
    with pytest.raises(UserError, match=message):
        Cluster.from_options(*options, environ={})


def test_a_variable_that_is_not_a_number_is_named():
    with pytest.raises(UserError, match="KERAS_DISTRIBUTION_NUM_PROCESSES='two'"):
        Cluster.from_options("h:1", None, 0, environ={"KERAS_DISTRIBUTION_NUM_PROCESSES": "two"})


def test_each_process_takes_its_own_rows_of_every_batch(monkeypatch):
    monkeypatch.setattr(distribute, "_placement", Placement(process_id=1, processes=2, devices=4))
    assert distribute.even_rows(32) == 32 and distribute.even_rows(7) == 4 and distribute.even_rows(3) == 0
    assert distribute.process_rows(32) == slice(16, 32)
    assert not distribute.is_writer()
    monkeypatch.setattr(distribute, "_placement", Placement())
    assert distribute.even_rows(7) == 7 and distribute.process_rows(7) == slice(0, 7) and distribute.is_writer()


def test_distribute_says_what_it_needs():
    """Off the JAX backend (this process: TensorFlow), one line, before any work."""
    with pytest.raises(UserError, match="KERAS_BACKEND=jax"):
        distribute.use_devices(8)


def test_a_distributed_epoch_gives_each_process_its_share(monkeypatch):
    """The batches of two processes on two devices, put together, are the one-process batches,
    each process holding half of every one; a short last batch keeps what splits evenly."""
    import numpy as np

    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import epoch_batches

    config = ClassifierConfig(batch_size=4, height=2, width=2, seed=3, class_weighting=True)
    images = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    train = (images, np.arange(10) % 2)
    monkeypatch.setattr("training.classifier.trainer.keras_backend", lambda: "jax")  # the numpy batches
    whole, steps = epoch_batches(config, train, 2, 0, 1)
    whole = list(whole)
    assert steps == 3 and [len(b[0]) for b in whole] == [4, 4, 2]
    shares = []
    for process in (0, 1):
        monkeypatch.setattr(distribute, "_placement", Placement(process_id=process, processes=2, devices=2))
        batches, steps = epoch_batches(config, train, 2, 0, 1)
        shares.append(list(batches))
        assert steps == 3
    for one, first, second in zip(whole, *shares):
        for part in range(3):  # images, one-hot labels, class weights
            np.testing.assert_array_equal(np.concatenate([first[part], second[part]]), one[part])


def test_cluster_options_without_distribute_are_refused(tmp_path, capsys):
    """Each process would train the whole run alone and write the same folder: one line, before
    any data is read."""
    from training.cli import main

    assert main(["classify", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"),
                 "--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "0"]) == 1
    assert "need --distribute" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_trainer_says_the_same_line_of_how_it_spreads():
    from training.distribute import Placement

    assert Placement(devices=8).describe() == "data parallel over 8 devices"
    assert Placement(process_id=1, processes=2, devices=4).describe() == \
        "data parallel over 4 devices in 2 processes (this is process 1)"
