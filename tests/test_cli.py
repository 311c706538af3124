"""The command line, run as a user runs it: output format, exit codes, and quiet stderr."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from retina_desktop.cli import main
from tests.conftest import CLASSES, ROOT, fundus_like

# What TensorFlow prints when nothing silences it.
SPAM = ("oneDNN", "absl::InitializeLog", "cudart_stub", "This TensorFlow binary", "I0000")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retina_desktop", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )


def test_predict_json_with_a_bad_file_among_good_ones(small_bundle, tmp_path):
    good = tmp_path / "good.png"
    fundus_like(200).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = run_cli("predict", str(good), str(bad), str(good), "--model", str(small_bundle), "--json")
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(bad), str(good)]
    first = lines[0]
    assert set(first) >= {"file", "label", "confidence", "probabilities"}
    assert list(first["probabilities"]) == CLASSES
    assert first["label"] in CLASSES and 0 < first["confidence"] <= 1
    assert "bad.jpg" in lines[1]["error"] and "not an image" in lines[1]["error"]
    assert not any(word in result.stderr for word in SPAM), result.stderr


def test_predict_text_all_good_exits_zero(small_bundle, image_file, capsys):
    assert main(["predict", str(image_file), "--model", str(small_bundle)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{image_file}: ") and "model confidence" in out
    assert "not a medical device" in err


def test_an_image_that_fails_the_checks_is_not_judged(small_bundle, tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    fundus_like(40).save(tiny)
    assert main(["predict", str(tiny), "--model", str(small_bundle)]) == 0
    out = capsys.readouterr().out
    assert "not judged: image too small to judge (40 x 40 pixels" in out and "model output would be" in out
    assert main(["predict", str(tiny), "--model", str(small_bundle), "--json"]) == 0
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert checks["passed"] is False and "too small" in checks["reasons"][0]
    assert main(["predict", str(tiny), "--model", str(small_bundle), "--no-checks"]) == 0
    assert "model confidence" in capsys.readouterr().out


def test_bad_model_is_one_clear_error(tmp_path, image_file, capsys):
    fake = tmp_path / "keras_model.h5"
    fake.write_text("no")
    assert main(["predict", str(image_file), "--model", str(fake)]) == 1
    assert "keras_model.h5" in capsys.readouterr().err


def test_usage_errors_exit_2():
    assert run_cli("predict").returncode == 2
    assert run_cli("batch", "somewhere").returncode == 2  # --out is required


def test_batch_writes_a_row_per_file_errors_included(small_bundle, tmp_path, capsys):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    fundus_like(200, seed=1).save(folder / "a.png")
    fundus_like(200, seed=2).save(folder / "sub" / "b.jpg")
    (folder / "c.png").write_bytes(b"broken")
    out = tmp_path / "results.csv"
    code = main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)])
    assert code == 1  # one file failed
    rows = list(csv.DictReader(out.open()))
    assert [r["file"].split("/")[-1] for r in rows] == ["a.png", "c.png", "b.jpg"]
    assert rows[0]["label"] in CLASSES and not rows[0]["error"]
    assert rows[1]["label"] == "" and "c.png" in rows[1]["error"]
    assert set(rows[0]) == {"file", "label", "confidence", "checks_passed", "check_reasons", "error", *(f"p_{c}" for c in CLASSES)}
    assert "3 images: 2 classified, 1 errors" in capsys.readouterr().out


def test_info_describes_the_model(small_bundle, capsys):
    assert main(["info", "--model", str(small_bundle), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["classes"] == CLASSES and info["modality"] == "fundus"
    assert main(["info", "--model", str(small_bundle)]) == 0
    text = capsys.readouterr().out
    assert "48x48" in text and "not a medical device" in text


@pytest.mark.data
def test_predict_on_real_images_with_the_shipped_model(shared_data):
    model = ROOT / "models" / "keras_model.h5"
    if not model.exists():
        pytest.skip("models/keras_model.h5 is not built yet")
    files = sorted((shared_data / "fundus4" / "glaucoma").glob("*"))[:2] + sorted(
        (shared_data / "fundus4" / "cataract").glob("*")
    )[:2]
    result = run_cli("predict", *map(str, files), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and all(line["label"] in CLASSES for line in lines)
