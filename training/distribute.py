"""`--distribute`: data-parallel training over every device, on one machine or several, with
Keras's own engine.

Keras 3's distribution API (`keras.distribution.DataParallel`) replicates the model on a device
mesh and splits each global batch across it; JAX then all-reduces the gradients inside the
compiled step. Several machines (or processes) join through `keras.distribution.initialize`,
which is `jax.distributed.initialize`: one coordinator address, the number of processes, and
each process's id, from the options or from Keras's variables (`KERAS_DISTRIBUTION_JOB_ADDRESSES`,
`KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`) that a launcher or cluster
scheduler sets. Nothing here is ours but the bookkeeping around that engine:

- every process builds the run's global batches in the single-device run's (seed, epoch) order
  and hands Keras its own share of each (`process_rows`): the global batch, and so the training,
  is the one-device run's whatever the number of processes;
- one process (the first) writes: checkpoints, the bundle, logs (`is_writer`); the others train
  alongside and stop when training ends;
- validation predicts on every process the same way (`predictions_on_every_process`), so that
  early stopping decides alike everywhere.

It runs on the JAX backend (the GPU machines have no TensorFlow, and Keras's distribution API is
JAX's), and the global batch must split evenly over all devices.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras, keras_backend

# Keras's own variables for a multi-process run (read by keras.distribution.initialize too).
ADDRESS_VARIABLE = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
PROCESSES_VARIABLE = "KERAS_DISTRIBUTION_NUM_PROCESSES"
PROCESS_ID_VARIABLE = "KERAS_DISTRIBUTION_PROCESS_ID"


@dataclass(frozen=True)
class Cluster:
    """The processes of one run: where the first one listens, how many, and which this is."""

    coordinator: str
    processes: int
    process_id: int

    @classmethod
    def from_options(cls, coordinator: str | None, processes: int | None, process_id: int | None,
                     environ=os.environ) -> Cluster | None:
        """The cluster the options (or else Keras's variables) describe; None for one process.
        Raises `UserError` (one line) when they describe half a cluster."""
        coordinator = coordinator or environ.get(ADDRESS_VARIABLE, "").split(",")[0] or None
        processes = processes if processes is not None else _int_variable(environ, PROCESSES_VARIABLE)
        process_id = process_id if process_id is not None else _int_variable(environ, PROCESS_ID_VARIABLE)
        given = [coordinator is not None, processes is not None, process_id is not None]
        if not any(given):
            return None
        if not all(given):
            raise UserError("several processes need all three of --coordinator HOST:PORT, --num-processes N and "
                            f"--process-id I (or {ADDRESS_VARIABLE}, {PROCESSES_VARIABLE}, {PROCESS_ID_VARIABLE})")
        if ":" not in coordinator:
            raise UserError(f"--coordinator {coordinator!r} needs a port: HOST:PORT, the first process's address")
        if processes < 1 or not 0 <= process_id < processes:
            raise UserError(
                f"--process-id {process_id} must be one of 0..{processes - 1} (--num-processes {processes})"
            )
        return cls(coordinator, processes, process_id)


@dataclass(frozen=True)
class Placement:
    """Where this process trains: its share of the global batch and whether it writes."""

    process_id: int = 0
    processes: int = 1
    devices: int = 1

    def describe(self) -> str:
        """The line a trainer prints when it spreads its batches."""
        return (f"data parallel over {self.devices} devices"
                + (f" in {self.processes} processes (this is process {self.process_id})" if self.processes > 1 else ""))


_placement = Placement()


def is_writer() -> bool:
    """Whether this process writes the run's files (checkpoints, bundle, logs): the first one."""
    return _placement.process_id == 0


def use_devices(batch_size: int, cluster: Cluster | None = None) -> Placement:
    """Train data-parallel over every device of every process from here on (join `cluster`
    first, where given); returns this process's placement. Raises `UserError` (one line) off the
    JAX backend, or when `batch_size` does not split evenly over the devices."""
    global _placement
    if keras_backend() != "jax":
        raise UserError(f"--distribute needs Keras's JAX backend (KERAS_BACKEND=jax); this run uses {keras_backend()}")
    keras = import_keras()
    import jax

    if cluster is not None and cluster.processes > 1:
        # CPU processes exchange gradients through Gloo; GPUs use NCCL whatever this says.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(cluster.coordinator, cluster.processes, cluster.process_id)
    devices = jax.devices()  # every process's, once joined
    if batch_size % len(devices):
        raise UserError(f"--batch-size {batch_size} does not split evenly over {len(devices)} devices "
                        f"({', '.join(str(d) for d in devices)}): use a multiple of {len(devices)}")
    # Each process hands Keras its own rows of every batch (process_rows): Keras's own sharding
    # of a dataset across processes is tf.data's, and this run has no TensorFlow.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=jax.process_count() == 1))
    _placement = Placement(jax.process_index(), jax.process_count(), len(devices))
    return _placement


def process_rows(rows: int) -> slice:
    """This process's rows of a global batch of `rows`, which the caller made a multiple of the
    device count (`even_rows`)."""
    share = rows // _placement.processes
    return slice(_placement.process_id * share, (_placement.process_id + 1) * share)


def even_rows(rows: int) -> int:
    """The rows of a batch of `rows` that split evenly over the devices: a short last batch of an
    epoch loses its remainder when distributed (none is lost when the epoch size is a multiple of
    the batch size, as in the fundus recipe)."""
    return rows - rows % _placement.devices


@contextlib.contextmanager
def predictions_on_every_process():
    """Predict outside the data-parallel layout: a prediction batch need not split evenly over the
    devices (a validation set of 37), and with several processes each would otherwise see only
    its share of the predictions. Every process then computes them all, identically."""
    if _placement.devices == 1:
        yield
        return
    keras = import_keras()
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def save_weights(path: Path, save) -> None:
    """`save(file)` (a model's save_weights) to `path`, atomically, by the writer alone. Every
    process of a distributed run calls it: saving moves values with a `device_put` that JAX checks
    across processes (a process that skipped it broke the next collective), so the others save
    too, each to a scratch file that is thrown away."""
    if is_writer():
        atomic_save(path, save)
        return
    with tempfile.TemporaryDirectory(prefix="retina-scratch-") as scratch:
        save(str(Path(scratch) / path.name))


def finish() -> bool:
    """After training, on every process: leave the cluster (all processes together), so that the
    writer goes on alone on its own device (evaluation, the bundle) while the others end.
    Returns whether the run was spread over several processes (their models' weights then live
    on the cluster that is gone: the writer reloads them from the checkpoint)."""
    if _placement.devices > 1:  # evaluation's batches need not split evenly over the devices
        import_keras().distribution.set_distribution(None)
    if _placement.processes == 1:
        return False
    import jax

    jax.distributed.shutdown()
    return True


def agree(value: int, what: str) -> None:
    """Raise `UserError` on every process (one line) unless all of them hold the same `value`:
    processes that resume from different epochs would wait for each other for ever."""
    if _placement.processes == 1:
        return
    from jax.experimental import multihost_utils

    values = np.asarray(multihost_utils.process_allgather(np.int32(value)))
    if len(set(values.tolist())) > 1:
        raise UserError(f"the processes disagree on {what}: {', '.join(map(str, values.tolist()))} (process 0 first); "
                        "every process must see the same --out folder (shared storage) and data")


def _int_variable(environ, name: str) -> int | None:
    value = environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise UserError(f"{name}={value!r} is not a whole number") from err
