"""`--distribute`: data-parallel training over every local device, with Keras's own engine.

Keras 3's distribution API (`keras.distribution.DataParallel`) replicates the model on a device
mesh and splits each global batch across it; JAX then all-reduces the gradients inside the
compiled step. Nothing here is ours but the checks: it runs on the JAX backend (the GPU machines
have no TensorFlow, and Keras's distribution API is JAX's), and the global batch must split
evenly. Checkpoints, the (seed, epoch) batch order and resume are the single-device run's:
the process writes them once, as before.
"""

from __future__ import annotations

from retina_desktop.errors import UserError
from retina_desktop.quiet import import_keras, keras_backend


def use_local_devices(batch_size: int) -> int:
    """Train data-parallel over all local devices from here on; returns how many. Raises
    `UserError` (one line) off the JAX backend or when `batch_size` does not split evenly."""
    if keras_backend() != "jax":
        raise UserError(f"--distribute needs Keras's JAX backend (KERAS_BACKEND=jax); this run uses {keras_backend()}")
    keras = import_keras()
    import jax

    devices = jax.devices()
    if batch_size % len(devices):
        raise UserError(f"--batch-size {batch_size} does not split evenly over {len(devices)} devices "
                        f"({', '.join(str(d) for d in devices)}): use a multiple of {len(devices)}")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return len(devices)
