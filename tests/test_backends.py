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
from retina_desktop.service import Classifier
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
    blocker = tmp_path / "no_tensorflow"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_TENSORFLOW)
    env = {**os.environ, "KERAS_BACKEND": "jax",
           "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    command = [sys.executable, "-c", CHILD, "classify", "--data", str(root), "--out", str(out), "--modality", "oct",
               "--size", "24", "--width-multiplier", "0.25", "--epochs", "2", "--batch-size", "8", "--seed", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["code"] == 0 and child["backend"] == "jax" and not child["tensorflow"]
    sidecar = json.loads((out / "keras_model.json").read_text())
    assert sidecar["classes"] == ["dme", "normal"] and sidecar["temperature"] > 0
    assert (out / "keras_model.familiarity.npz").exists()

    # Here, on TensorFlow: the Keras path and the compiled one give the JAX model's answers.
    from retina_desktop.service import Classifier

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
    from training.distribute import use_local_devices
    assert use_local_devices(8) == 2
config = dataclasses.replace(CONFIG, epochs=1)
model, _ = train_classifier(config, TRAIN, VAL, 2, Path(sys.argv[1]), default_config("fundus"), log=lambda *a: None)
np.savez(Path(sys.argv[1]) / "weights.npz", *[np.asarray(w) for w in model.get_weights()])
'''


def test_two_devices_train_the_weights_one_device_does(tmp_path):
    """Data parallel over two (virtual CPU) devices, the global batch split between them, ends
    where one device does with the same global batch: the same batches, augmentation draws,
    dropout and batch-norm statistics, up to the order of the sums (measured: 1.3e-5 at most,
    after the two steps of an epoch of the resume tests' run, augmentation and dropout on)."""
    weights = {}
    for name, devices in (("one", 1), ("distribute", 2)):
        out = tmp_path / name
        env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT),
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        done = subprocess.run([sys.executable, "-c", TRAIN_RUN, str(out), name], env=env, capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        weights[name] = np.load(out / "weights.npz")
    one, two = weights["one"], weights["distribute"]
    assert one.files == two.files and len(one.files) > 10
    for key in one.files:
        np.testing.assert_allclose(two[key], one[key], rtol=0, atol=5e-5, err_msg=key)


def test_distribute_says_what_it_needs():
    """Off the JAX backend (this process: TensorFlow), one line, before any work."""
    from retina_desktop.errors import UserError
    from training.distribute import use_local_devices

    with pytest.raises(UserError, match="KERAS_BACKEND=jax"):
        use_local_devices(8)
