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
