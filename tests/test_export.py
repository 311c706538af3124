"""Compiled (LiteRT) models: export, the hash that keeps them current, and agreement with Keras.

The two paths must give the same probabilities (to 1e-4) and the same heatmaps, on our own
model layout, on a Teachable-Machine-shaped export written by Keras 2 (tf_keras, in a
subprocess), and on the shipped models; and the compiled path must run without TensorFlow
(checked in a fresh interpreter through `sys.modules`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.errors import ModelError
from retina_desktop.core.paths import models_dir
from retina_desktop.core.settings import Settings
from retina_desktop.inference.bundle import load_bundle
from retina_desktop.inference.heatmaps import gradcam
from retina_desktop.inference.litert_backend import (
    compiled_path_for,
    file_sha256,
    find_compiled,
    manifest_path_for,
    read_manifest,
)
from retina_desktop.services.classify import Classifier
from tests.conftest import CLASSES, ROOT, fundus_like
from tests.keras2_scripts import REWRITE_AS_KERAS24
from training.classifier.export import export_model

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed"
)
NO_CHECKS = Settings(checks_enabled=False)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Models compiled on first open go to this test's cache, not the developer's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _copy_bundle(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in (source.name, "labels.txt", source.with_suffix(".json").name):
        if (source.parent / name).exists():
            shutil.copy2(source.parent / name, folder / name)
    return folder / source.name


def _images(shape: tuple[int, int], n: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n - 1, *shape, 3), dtype=np.uint8)
    disc = np.asarray(fundus_like(max(shape), seed).resize((shape[1], shape[0])))[None]
    return np.concatenate([disc, noise])


def _assert_paths_agree(model_path: Path, images: np.ndarray, heatmap_classes=None, **kwargs) -> None:
    keras_side = Classifier(model_path, backend="keras", settings=NO_CHECKS, **kwargs)
    litert_side = Classifier(model_path, backend="litert", settings=NO_CHECKS, **kwargs)
    assert litert_side.bundle().backend == "litert" and keras_side.bundle().backend == "keras"
    expected = keras_side.predict_arrays(images)
    got = litert_side.predict_arrays(images)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert (got.argmax(1) == expected.argmax(1)).all()
    for index in heatmap_classes or []:
        theirs = gradcam(keras_side.bundle(), images[0], index)
        ours = gradcam(litert_side.bundle(), images[0], index)
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


# ---- our model layout -----------------------------------------------------------------------


def test_export_writes_the_compiled_model_with_the_source_hash(small_bundle, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    compiled = export_model(model)
    assert compiled == compiled_path_for(model) == tmp_path / "bundle" / "keras_model.tflite"
    manifest = read_manifest(compiled)
    assert manifest["source"] == "keras_model.h5"
    assert manifest["source_sha256"] == file_sha256(model)
    assert manifest["input_shape"] == [48, 48, 3] and manifest["num_classes"] == len(CLASSES)
    # Our layout: last_conv -> pooling -> one softmax Dense, whose logit is the CAM score.
    assert manifest["heatmap"]["layer"] == "last_conv" and manifest["heatmap"]["score"] == "logit"
    assert [op["op"] for op in manifest["heatmap"]["head"]] == ["global_average_pool", "dense"]
    assert find_compiled(model) == compiled


def test_export_verb_writes_a_complete_bundle_into_out(small_bundle, tmp_path, capsys):
    from training.cli import main

    assert main(["export", "--model", str(small_bundle), "--out", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [
        "keras_model.h5", "keras_model.json", "keras_model.tflite", "keras_model.tflite.json", "labels.txt"
    ]
    assert "keras_model.tflite" in capsys.readouterr().out
    assert load_bundle(tmp_path / "out" / "keras_model.h5", backend="litert").backend == "litert"


def test_both_paths_agree_on_our_model_with_heatmaps(small_bundle, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    export_model(model)
    _assert_paths_agree(model, _images((48, 48)), heatmap_classes=range(len(CLASSES)))
    # Calibration (temperature 1.5 in this sidecar) is applied the same way on both paths.
    litert_side = Classifier(model, backend="litert", settings=NO_CHECKS)
    raw, calibrated = (litert_side.predict_arrays(_images((48, 48)), calibrated=c) for c in (False, True))
    assert not np.allclose(raw, calibrated)


def test_a_stale_compiled_model_is_not_used(small_bundle, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    compiled = export_model(model)
    manifest = read_manifest(compiled)
    manifest["source_sha256"] = "0" * 64  # as if the .h5 had been retrained since
    manifest_path_for(compiled).write_text(json.dumps(manifest), encoding="utf-8")
    assert find_compiled(model) is None
    with pytest.raises(ModelError, match="no compiled"):
        load_bundle(model, backend="litert")
    # "auto" falls back to Keras and compiles a current copy into the user's cache.
    bundle = load_bundle(model, backend="auto")
    assert bundle.backend == "litert" and bundle.compiled.path.parent.parent.name == "RetinaDesktop"
    assert read_manifest(bundle.compiled.path)["source_sha256"] == file_sha256(model)


# ---- no TensorFlow on the compiled path ------------------------------------------------------

NO_TF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from retina_desktop.inference.heatmaps import heatmap_for
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(sys.argv[1], modality_model=sys.argv[2])
    prediction = classifier.predict_file(sys.argv[3])
    heat = heatmap_for(classifier, prediction)
    print(json.dumps({
        "backend": classifier.bundle().backend,
        "modality_backend": classifier._modality.bundle().backend,
        "probabilities": prediction.probabilities,
        "checks": prediction.checks.scores,
        "heatmap_max": float(heat.max()),
        "heavy": sorted(m for m in ("tensorflow", "keras", "tf_keras") if m in sys.modules),
    }))
    """
)


def _run_clean(args: list[str], cache: Path) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", NO_TF_SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def modality_bundle(tmp_path_factory) -> Path:
    """A tiny fundus / oct / other model standing in for the image checks' modality model."""
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.inference.model_files import write_labels
    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import build_classifier

    keras = import_keras()
    keras.utils.set_random_seed(2)
    folder = tmp_path_factory.mktemp("modality")
    build_classifier(ClassifierConfig(height=32, width=32, width_multiplier=0.25), 3).save(folder / "keras_model.h5")
    write_labels(folder / "labels.txt", ["fundus", "oct", "other"])
    return folder / "keras_model.h5"


def test_the_compiled_path_imports_no_tensorflow(small_bundle, modality_bundle, image_file, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    modality = _copy_bundle(modality_bundle, tmp_path / "modality")
    export_model(model)
    export_model(modality)
    result = _run_clean([str(model), str(modality), str(image_file)], tmp_path / "cache")
    assert result["heavy"] == []
    assert result["backend"] == result["modality_backend"] == "litert"
    assert set(result["checks"]) >= {"p_fundus", "p_oct", "p_other"}
    assert result["heatmap_max"] == pytest.approx(1.0)
    keras_side = Classifier(model, backend="keras", modality_model=modality).predict_file(image_file)
    for name, p in keras_side.probabilities.items():
        assert result["probabilities"][name] == pytest.approx(p, abs=1e-4)


def test_a_new_model_is_compiled_into_the_cache_once(small_bundle, modality_bundle, image_file, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    modality = _copy_bundle(modality_bundle, tmp_path / "modality")
    opened = Classifier(model, modality_model=modality)
    opened.predict_file(image_file)  # Keras loads it, compiles it into the cache, LiteRT answers
    assert opened.bundle().backend == "litert"
    assert not compiled_path_for(model).exists()  # the model's own folder is left alone
    cached = sorted(p.name for p in (tmp_path / "cache" / "RetinaDesktop" / "compiled").glob("*.tflite"))
    assert cached == sorted(f"{file_sha256(p)}.tflite" for p in (model, modality))
    result = _run_clean([str(model), str(modality), str(image_file)], tmp_path / "cache")
    assert result["heavy"] == [] and result["backend"] == "litert"


# ---- a Teachable Machine export (Keras 2) ----------------------------------------------------

# The layout of a real Teachable Machine export, written by Keras 2 with its 2.4-era JSON;
# small (MobileNetV2 alpha 0.35 at 96x96) so the test stays quick. Also saves Keras 2's answers.
TM_SCRIPT = REWRITE_AS_KERAS24 + r"""
import json, pathlib, sys
import h5py, numpy as np
try:
    import tf_keras as k
except ImportError:
    sys.exit(3)
out = pathlib.Path(sys.argv[1])
k.utils.set_random_seed(0)
rng = np.random.default_rng(0)
base = k.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
for layer in base.layers:
    if isinstance(layer, k.layers.BatchNormalization):
        g, b, m, v = layer.get_weights()
        layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape),
                           rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 1.5, v.shape)])
tm = k.Sequential([
    k.Sequential([k.Model(base.inputs, base.outputs, name="model1"),
                  k.layers.GlobalAveragePooling2D()], name="sequential_1"),
    k.Sequential([
        k.layers.Dense(100, activation="relu", name="dense_Dense1"),
        k.layers.Dense(3, activation="softmax", use_bias=False, name="dense_Dense2"),
    ], name="sequential_3"),
], name="sequential_4")
tm.save(out / "keras_model.h5", save_format="h5")
x = np.load(out / "x.npy").astype("float32") / 127.5 - 1.0
np.save(out / "keras2_y.npy", tm.predict(x, verbose=0))
rewrite_as_keras24(out / "keras_model.h5")
(out / "labels.txt").write_text("0 healthy\n1 cataract\n2 other\n")
"""


@pytest.fixture(scope="module")
def teachable_machine_export(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    folder = tmp_path_factory.mktemp("tm")
    images = _images((96, 96), n=5)
    np.save(folder / "x.npy", images)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_USE_LEGACY_KERAS="1")
    done = subprocess.run(
        [sys.executable, "-c", TM_SCRIPT, str(folder)], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode == 3:
        pytest.skip("tf_keras (Keras 2) is not installed")
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "keras_model.h5", images, np.load(folder / "keras2_y.npy")


def test_teachable_machine_export_agrees_on_both_paths(teachable_machine_export):
    model, images, keras2 = teachable_machine_export
    compiled = export_model(model)
    heat = read_manifest(compiled)["heatmap"]
    # Not CAM: pooling, Dense(100, relu), Dense(3) - Grad-CAM through the head, done in numpy.
    assert heat["score"] == "logit"
    assert [op["op"] for op in heat["head"]] == ["global_average_pool", "dense", "dense"]
    _assert_paths_agree(model, images, heatmap_classes=range(3))
    litert_side = Classifier(model, backend="litert", settings=NO_CHECKS)
    np.testing.assert_allclose(litert_side.predict_arrays(images, calibrated=False), keras2, atol=1e-4)


# ---- the shipped models ----------------------------------------------------------------------

SHIPPED = {
    "fundus": (models_dir() / "keras_model.h5", "fundus4"),
    "oct": (models_dir() / "oct" / "keras_model.h5", "oct-dme"),
    "modality": (models_dir() / "modality" / "keras_model.h5", "fundus4"),
}


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_models_agree_on_both_paths(name, tmp_path, shared_data):
    path, data = SHIPPED[name]
    if not path.exists() or not path.with_suffix(".json").exists():
        pytest.skip(f"shipped model {path} is not there (yet)")
    if find_compiled(path) is None:  # not exported yet: compile a copy here
        path = _copy_bundle(path, tmp_path / name)
        export_model(path)
    from retina_desktop.imaging.decode import load_image
    from retina_desktop.imaging.preprocessing import fit_image

    spec = load_bundle(path, backend="litert").metadata.input
    files = sorted((shared_data / data).rglob("*.jpg"))[::97][:6]
    images = np.stack([fit_image(load_image(f).rgb, spec) for f in files])
    _assert_paths_agree(path, images, heatmap_classes=[0])


# ---- the self-test ---------------------------------------------------------------------------


def test_self_test_reports_models_on_the_compiled_path(small_bundle, modality_bundle, tmp_path, monkeypatch):
    from retina_desktop.services import selftest

    fundus = _copy_bundle(small_bundle, tmp_path / "models")
    modality = _copy_bundle(modality_bundle, tmp_path / "models" / "modality")
    export_model(fundus)
    export_model(modality)
    monkeypatch.setattr(selftest, "default_model_path", lambda: fundus)
    monkeypatch.setattr(selftest, "modality_model_path", lambda: modality)
    monkeypatch.setattr(selftest, "models_dir", lambda: tmp_path / "models")
    lines: list[str] = []
    status = selftest.run_self_test(echo=lines.append, report_dir=tmp_path / "reports")
    report = "\n".join(lines)
    assert status == 0, report
    assert report.count("compiled copy current, runs on litert") == 2
    assert "[warn] OCT model" in report  # optional: its absence is a warning, not a failure
    assert "Result: all checks passed." in report
    assert list((tmp_path / "reports").glob("self-test-*.txt"))


def _tamper(path: Path, count: int = 3000) -> None:
    """Change `count` bytes in the middle of a file (the weights), as the issue's report did."""
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + count] = bytes((b + 1) % 256 for b in data[start : start + count])
    path.write_bytes(bytes(data))


def test_a_compiled_copy_with_changed_bytes_is_refused_and_the_model_file_serves(small_bundle, tmp_path):
    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    compiled = export_model(model)
    assert read_manifest(compiled)["compiled_sha256"] == file_sha256(compiled)
    _tamper(compiled)
    problems: list[str] = []
    assert find_compiled(model, problems=problems) is None
    [problem] = problems
    assert str(compiled) in problem and "changed after compiling" in problem and "\n" not in problem
    with pytest.raises(ModelError, match="changed after compiling"):
        load_bundle(model, backend="litert")
    bundle = load_bundle(model, backend="auto")  # Keras reads the .h5 and compiles a fresh copy
    assert bundle.compiled_problem == problem
    assert bundle.compiled is not None and bundle.compiled.path != compiled
    keras_side = Classifier(model, backend="keras", settings=NO_CHECKS)
    images = _images((48, 48))
    auto_side = Classifier(model, backend="auto", settings=NO_CHECKS)
    np.testing.assert_allclose(auto_side.predict_arrays(images), keras_side.predict_arrays(images), atol=1e-4)


def test_the_cli_warns_in_one_line_about_a_changed_compiled_copy(small_bundle, tmp_path, image_file, capsys):
    from retina_desktop.cli import main

    model = _copy_bundle(small_bundle, tmp_path / "bundle")
    compiled = export_model(model)
    _tamper(compiled)
    assert main(["predict", str(image_file), "--model", str(model)]) == 0
    out, err = capsys.readouterr()
    assert "model confidence" in out and f'warning: Compiled model "{compiled}"' in err
    assert "Traceback" not in err and err.count(str(compiled)) == 1, err


def test_a_compiled_generator_with_changed_bytes_is_refused(tiny_generator, tmp_path):
    from retina_desktop.inference.generator_export import compile_generator_beside
    from retina_desktop.services.synthetic_samples import open_generator

    folder = tmp_path / "gen"
    folder.mkdir()
    for name in (tiny_generator.name, tiny_generator.with_suffix(".json").name):
        shutil.copy2(tiny_generator.parent / name, folder / name)
    compiled = compile_generator_beside(folder / tiny_generator.name)
    assert read_manifest(compiled)["compiled_sha256"] == file_sha256(compiled)
    assert open_generator(folder / tiny_generator.name).compiled == compiled
    _tamper(compiled, 300)
    problems: list[str] = []
    assert find_compiled(folder / tiny_generator.name, problems=problems) is None and problems
    assert open_generator(folder / tiny_generator.name).compiled != compiled  # compiled anew, into the cache
