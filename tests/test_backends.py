"""Training on Keras's JAX backend, on a machine without TensorFlow (issue #35): the GPU machines
this project borrows have JAX but cannot install TensorFlow. `classify` trains there and writes a
bundle; the app, on TensorFlow and LiteRT, gives that model's own answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, class_folders

pytest.importorskip("jax", reason="the JAX backend is not installed (pip install -e '.[test]')")

# A run trains a tiny network for a few seconds, but JAX compiles each step first (half a minute).
pytestmark = pytest.mark.slow

# Makes `import tensorflow` fail in the child, as on a GPU machine.
NO_TENSORFLOW = '''
import sys
class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"No module named {name!r} (this test's machine has no TensorFlow)")
        return None
sys.meta_path.insert(0, _NoTensorFlow())
'''

# Trains, then answers a fixed batch with the trained model, under JAX.
CHILD = '''
import json, sys
import numpy as np
from training.cli import main
code = main(sys.argv[1:])
from retina_desktop.services.classify import Classifier
import keras
classifier = Classifier(sys.argv[sys.argv.index("--out") + 1] + "/keras_model.h5", backend="keras")
batch = np.random.default_rng(0).integers(0, 255, (4, 24, 24, 3)).astype(np.uint8)
print(json.dumps({"code": code, "backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules,
                  "probabilities": classifier.predict_arrays(batch, calibrated=False).tolist()}))
'''


def test_classify_trains_on_jax_without_tensorflow_and_the_app_gives_its_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where "auto" compiles the model
    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=12, size=40)
    out = tmp_path / "model"
    command = [sys.executable, "-c", CHILD, "classify", "--data", str(root), "--out", str(out), "--modality", "oct",
               "--size", "24", "--width-multiplier", "0.25", "--epochs", "2", "--batch-size", "8", "--seed", "1"]
    done = run_without_tensorflow(tmp_path, command)
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["code"] == 0 and child["backend"] == "jax" and not child["tensorflow"]
    sidecar = json.loads((out / "keras_model.json").read_text())
    assert sidecar["classes"] == ["dme", "normal"] and sidecar["temperature"] > 0
    assert (out / "keras_model.familiarity.npz").exists()

    # Here, on TensorFlow: the Keras path and the compiled one give the JAX model's answers.
    from retina_desktop.services.classify import Classifier

    batch = np.random.default_rng(0).integers(0, 255, (4, 24, 24, 3)).astype(np.uint8)
    for backend in ("keras", "auto"):
        ours = Classifier(out / "keras_model.h5", backend=backend).predict_arrays(batch, calibrated=False)
        np.testing.assert_allclose(ours, child["probabilities"], atol=1e-5, err_msg=backend)


# One tiny run, on however many devices XLA is told the CPU has.
TRAIN_RUN = '''
import sys
import numpy as np
from pathlib import Path
from retina_desktop.imaging.augmentation import default_config
from tests.test_resume import CONFIG, TRAIN, VAL
from training.classifier.trainer import train_classifier
import dataclasses
if sys.argv[2] == "distribute":
    from training.distribute import use_devices
    assert use_devices(8).devices == 2
config = dataclasses.replace(CONFIG, epochs=1)
val = (VAL[0][:7], VAL[1][:7])  # a validation set that does not split over two devices
model, _ = train_classifier(config, TRAIN, val, 2, Path(sys.argv[1]), default_config("fundus"), log=lambda *a: None)
np.savez(Path(sys.argv[1]) / "weights.npz", *[np.asarray(w) for w in model.get_weights()])
'''


def assert_same_weights(ours, theirs, *, within: float, all_within: float) -> None:
    """`ours` and `theirs` (the same weights, by name) agree to `within` in all but one in
    10,000 weights, and to `all_within` in every one.

    Why not all to `within`: Adam's first steps move each weight by about the learning rate times
    the sign of its gradient, so a weight whose gradient is near zero moves by up to twice the
    learning rate on a difference in the last bits of that gradient; such a weight or two (of
    86,000 here) differs by 1-2e-5, where every other is within 1e-6."""
    keys = list(ours.keys())
    assert keys == list(theirs.keys()) and len(keys) > 10
    differences = np.concatenate([np.abs(ours[key] - theirs[key]).ravel() for key in keys])
    assert np.count_nonzero(differences > within) <= differences.size / 10_000, np.sort(differences)[-5:]
    assert differences.max() <= all_within, np.sort(differences)[-5:]


def test_two_devices_train_the_weights_one_device_does(tmp_path):
    """Data parallel over two (virtual CPU) devices, the global batch split between them, ends
    where one device does with the same global batch: the same batches, augmentation draws,
    dropout and batch-norm statistics, up to the order of the sums (measured, after the two steps
    of an epoch of the resume tests' run, augmentation and dropout on: 1 of 86,060 weights
    beyond 1e-5, by 2.0e-5; 6 beyond 1e-6)."""
    weights = {}
    for name, devices in (("one", 1), ("distribute", 2)):
        out = tmp_path / name
        env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        done = subprocess.run([sys.executable, "-c", TRAIN_RUN, str(out), name], env=env, capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        weights[name] = np.load(out / "weights.npz")
    assert_same_weights(weights["distribute"], weights["one"], within=1e-5, all_within=5e-5)


# Three steps of the classifier's trainer from the same starting weights, with nothing random in
# them (no augmentation, no dropout), class weights on: the backends' own arithmetic only.
FIXED_RUN = '''
import sys
import numpy as np
from pathlib import Path
from retina_desktop.imaging.augmentation import default_config
from tests.test_resume import TRAIN
from training.classifier.config import ClassifierConfig
from training.classifier.trainer import build_trainer, epoch_batches
if sys.argv[2] == "tensorflow":
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()  # as train_classifier runs it
config = ClassifierConfig(height=32, width=32, width_multiplier=0.25, batch_size=8, augment=False, dropout=0.0,
                          seed=5, epochs=1)
import keras
keras.utils.set_random_seed(5)
trainer, classifier = build_trainer(config, 2, default_config("fundus"))
start = Path(sys.argv[1]) / "start.weights.h5"
if start.exists():
    classifier.load_weights(start)
else:
    classifier.save_weights(start)
before = [np.asarray(w) for w in classifier.get_weights()]
batches, steps = epoch_batches(config, TRAIN, 2, 0, 1)
loss = trainer.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0).history["loss"][-1]
steps = [np.asarray(w) - b for w, b in zip(classifier.get_weights(), before)]  # what training moved
np.savez(Path(sys.argv[1]) / (sys.argv[2] + ".npz"), *steps, loss=loss)
'''


def test_jax_and_tensorflow_train_alike(tmp_path):
    """The same three AdamW steps of the classifier from the same weights on both backends: the
    same loss, and the same move of the weights up to each backend's kernels' rounding, stated
    as the size of the difference against the size of the move: within 0.2% (measured over four
    starting points: 0.006% to 0.07%; losses within 3e-5 of each other, relatively). Weight by
    weight the difference reaches 4e-4 on a move of up to 3e-2: Adam moves a weight whose
    gradient is near zero by about the learning rate whichever sign the rounding gives it."""
    for backend in ("tensorflow", "jax"):  # TensorFlow first: it writes the starting weights
        done = subprocess.run([sys.executable, "-c", FIXED_RUN, str(tmp_path), backend],
                              env={**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
    tensorflow, jax = np.load(tmp_path / "tensorflow.npz"), np.load(tmp_path / "jax.npz")
    assert float(jax["loss"]) == pytest.approx(float(tensorflow["loss"]), rel=1e-4)
    moves = [np.concatenate([run[key].ravel() for key in run.files if key != "loss"]) for run in (tensorflow, jax)]
    assert np.linalg.norm(moves[1] - moves[0]) <= 2e-3 * np.linalg.norm(moves[0])
    assert np.linalg.norm(moves[0]) > 0.01  # the run trained


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _classify(data, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training", "classify", "--data", str(data), "--out", str(out), "--modality", "oct",
            "--size", "24", "--width-multiplier", "0.25", "--epochs", "3", "--batch-size", "8", "--epoch-size", "128",
            "--seed", "1", *extra]


def _two_processes(data, out, *extra: str) -> list[subprocess.Popen]:
    """The two processes of one run on this machine, one CPU device each, as two machines would
    start them: the same command but for --process-id."""
    coordinator = f"localhost:{_free_port()}"
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    return [subprocess.Popen(_classify(data, out, "--distribute", "--coordinator", coordinator, "--num-processes", "2",
                                       "--process-id", str(i), *extra),
                             env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in (0, 1)]


def _epoch_weights(folder, epoch: int) -> dict[str, np.ndarray]:
    import h5py

    weights = {}
    with h5py.File(folder / "checkpoint" / f"epoch-{epoch:04d}.weights.h5", "r") as handle:
        handle.visititems(lambda name, item: weights.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset)
                          else None)
    return weights


def test_two_processes_train_are_killed_and_resume_to_the_uninterrupted_weights(tmp_path):
    """A two-process run (jax.distributed on localhost, Gloo between the CPU processes) is killed
    during its second epoch, both processes at once as a lost machine takes a job down, and
    resumed with --resume: it ends at the weights, optimiser state included, of the same two
    processes left alone, and only the first process wrote or reported. (That two processes
    train what one does with the same global batch is the two-device test's: the processes split
    the batch as the devices do, and matched one device as closely when measured, 2.0e-5 at
    most after the same two steps.)"""
    import signal
    import time

    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=12, size=40)
    alone = tmp_path / "uninterrupted"
    processes = _two_processes(root, alone)
    logs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert "wrote" in logs[0] and "wrote" not in logs[1] and "epoch 1/3" not in logs[1]

    out = tmp_path / "killed"
    state_file = out / "checkpoint" / "state.json"
    processes = _two_processes(root, out)
    deadline = time.monotonic() + 300
    while not (state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1):
        assert all(p.poll() is None for p in processes), processes[0].communicate()[0][-2000:]
        assert time.monotonic() < deadline, "no checkpoint after five minutes"
        time.sleep(0.05)
    for process in processes:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert killed_at < 3 and not (out / "keras_model.h5").exists()

    processes = _two_processes(root, out, "--resume")
    logs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    assert f"resuming after epoch {killed_at} of 3" in logs[0] and "resuming" not in logs[1]
    assert (out / "keras_model.h5").exists() and (out / "evaluation").is_dir()
    resumed, uninterrupted = _epoch_weights(out, 3), _epoch_weights(alone, 3)
    assert list(resumed) == list(uninterrupted) and len(resumed) > 100
    for name, value in uninterrupted.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


def run_without_tensorflow(tmp_path, command: list[str]) -> subprocess.CompletedProcess:
    """`command` in a child on Keras's JAX backend that cannot import TensorFlow, as on a GPU
    machine; it must succeed."""
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def adversarial_run(kind: str):
    """(config, training data, train function, networks) of the GAN's or pix2pix's tiny test run."""
    if kind == "gan":
        from tests.test_gan import TINY, _toy
        from training.gan.trainer import train_gan

        return TINY, _toy(), train_gan, ("generator", "discriminator", "ema_generator")
    from tests.test_pix2pix import TINY, _tiny_data
    from training.pix2pix.trainer import train_pix2pix

    return TINY, _tiny_data(), train_pix2pix, ("generator", "discriminator")


def sampler_inputs(kind: str) -> list:
    """A fixed input to each trainer's sampling network (the GAN's EMA generator, pix2pix's generator)."""
    config, data, _, _ = adversarial_run(kind)
    if kind == "gan":
        return [
            np.random.default_rng(0).normal(size=(2, config.latent_dim)).astype("float32"),
            np.array([0, 1], np.int32),
        ]
    return [data[0][:2]]


# An adversarial trainer's whole tiny run in the child: straight through, and stopped after epoch 1
# then resumed; every weight of both, and the straight run's sampling network and its answer.
ADVERSARIAL_RUN = '''
import sys
import numpy as np
from pathlib import Path
from tests.test_backends import adversarial_run, sampler_inputs
out, kind = Path(sys.argv[1]), sys.argv[2]
config, data, train, networks = adversarial_run(kind)
quiet = dict(verbose=0, log=lambda *a: None)
straight, state = train(config, *data, out / "straight", **quiet)
train(config, *data, out / "resumed", stop_after_epochs=1, **quiet)
resumed, _ = train(config, *data, out / "resumed", resume=True, **quiet)
sampler = straight.ema_generator if kind == "gan" else straight.generator
sampler.save(out / "sampler.keras")
np.savez(out / "run.npz", made=np.asarray(sampler(sampler_inputs(kind), training=False)),
         step=int(np.asarray(resumed.step_counter.value)), history=[sorted(h.items())[0][1] for h in state.history],
         **{f"{name}_{run}_{i}": np.asarray(w) for run, model in (("straight", straight), ("resumed", resumed))
            for name in networks for i, w in enumerate(getattr(model, name).get_weights())})
'''


@pytest.mark.parametrize("kind", ["gan", "pix2pix"])
def test_the_adversarial_trainers_run_on_jax_without_tensorflow_resume_exactly_and_the_app_reads_them(tmp_path, kind):
    """`JaxConditionalGAN` and `JaxPix2Pix` (Keras's JAX fit(), each step written as a function of
    the state; augmentation, dropout, EMA and ADA on as the tiny configs have them): they train,
    resume after epoch 1 to the straight run's weights bit for bit, and the generator written on
    JAX gives the same images here, on TensorFlow."""
    run_without_tensorflow(tmp_path, [sys.executable, "-c", ADVERSARIAL_RUN, str(tmp_path), kind])
    run = np.load(tmp_path / "run.npz")
    assert int(run["step"]) == 6 and np.isfinite(run["history"]).all()  # 3 epochs of 2 steps
    straight = sorted(k for k in run.files if "_straight_" in k)
    assert len(straight) > 10
    for key in straight:
        np.testing.assert_array_equal(run[key.replace("_straight_", "_resumed_")], run[key], err_msg=key)

    from retina_desktop.core.quiet import import_keras

    sampler = import_keras().models.load_model(tmp_path / "sampler.keras", compile=False)
    np.testing.assert_allclose(np.asarray(sampler(sampler_inputs(kind), training=False)), run["made"], atol=1e-5)


# One epoch of an adversarial trainer's tiny run on however many devices XLA is told the CPU has.
ADVERSARIAL_DEVICES_RUN = '''
import dataclasses, sys
import numpy as np
from pathlib import Path
from tests.test_backends import adversarial_run
from training.distribute import use_devices
out, kind, devices = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
config, data, train, networks = adversarial_run(kind)
if devices > 1:
    assert use_devices(config.batch_size).devices == devices
model, _ = train(dataclasses.replace(config, epochs=1), *data, out, verbose=0, log=lambda *a: None)
np.savez(out / "weights.npz", **{f"{name}_{i}": np.asarray(w) for name in networks
                                 for i, w in enumerate(getattr(model, name).get_weights())})
'''


@pytest.mark.parametrize("kind", ["gan", "pix2pix"])
def test_the_adversarial_trainers_on_two_devices_train_what_one_does(tmp_path, kind):
    """`gan --distribute` and `pix2pix --distribute` (two virtual CPU devices, each half of every
    batch) end their first epoch (two steps) where one device does: the same draws, with batch
    norm and the minibatch spread over the whole batch, up to the order of the sums (measured:
    1.8e-7 at most for the GAN's 65,696 weights, 3.9e-7 for pix2pix's 9,740)."""
    weights = []
    for devices in (1, 2):
        out = tmp_path / str(devices)
        env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        done = subprocess.run([sys.executable, "-c", ADVERSARIAL_DEVICES_RUN, str(out), kind, str(devices)], env=env,
                              capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        weights.append(np.load(out / "weights.npz"))
    assert_same_weights(weights[1], weights[0], within=1e-5, all_within=5e-5)
