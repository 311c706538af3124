"""The command line, run as a user runs it: output format, exit codes, and quiet stderr."""

from __future__ import annotations

import csv
import json
import os
import shutil
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
    assert "not judged: image too small to judge (40 x 40 pixels" in out and "model output would be" not in out
    assert main(["predict", str(tiny), "--model", str(small_bundle), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    checks = line["checks"]
    assert checks["passed"] is False and "too small" in checks["reasons"][0]
    assert line["label"] is None and line["confidence"] is None and line["not_judged"] is True
    assert "too small" in line["reasons"][0]
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
    assert set(rows[0]) == {"file", "label", "confidence", "unsure", "not_judged", "answer", "checks_passed",
                            "check_reasons", "error", "unfamiliar", "familiarity_distance",
                            *(f"p_{c}" for c in CLASSES)}
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
    assert len(lines) == 4
    # A photograph the checks refuse has no label; every other one has a class of the model.
    assert all(line["label"] is None if line["not_judged"] else line["label"] in CLASSES for line in lines)


# ---- hostile input (issue #20): one line naming the file, the other files still run -------


@pytest.mark.parametrize("text", ["[]", "null", '"s"', '{"check_overrides": {"min_side": "big"}}'])
def test_a_settings_file_of_the_wrong_shape_is_one_warning_not_a_traceback(small_bundle, capsys, text):
    from retina_desktop.core.settings import settings_path

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    try:
        assert main(["info", "--model", str(small_bundle)]) == 0
    finally:
        path.unlink()
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(path) in warnings[0] and "default settings" in warnings[0]


def _never_classify(monkeypatch):
    from retina_desktop.services.classify import Classifier

    def refuse(*args, **kwargs):
        raise AssertionError("images were classified before --out was checked")

    monkeypatch.setattr(Classifier, "predict_files", refuse)
    monkeypatch.setattr(Classifier, "bundle", refuse)


@pytest.mark.parametrize("where", ["under_a_file", "a_folder", "proc"])
def test_batch_checks_out_before_any_work(small_bundle, tmp_path, capsys, monkeypatch, where):
    folder = tmp_path / "images"
    folder.mkdir()
    fundus_like(200).save(folder / "a.png")
    (tmp_path / "plain.txt").write_text("x")
    out = {"under_a_file": tmp_path / "plain.txt" / "results.csv", "a_folder": tmp_path,
           "proc": "/proc/results.csv"}[where]
    _never_classify(monkeypatch)
    assert main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and str(out) in err


def test_batch_with_a_file_name_that_is_not_utf8(small_bundle, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    odd = folder / os.fsdecode(b"caf\xe9.png")  # Latin-1, as an old Windows share leaves it
    fundus_like(200, seed=1).save(odd)
    fundus_like(200, seed=2).save(folder / "b.png")
    out = tmp_path / "results.csv"
    assert main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))  # still valid UTF-8
    assert [r["file"].split("/")[-1] for r in rows] == ["b.png", "caf\\udce9.png"]
    assert all(r["label"] in CLASSES for r in rows)
    assert "2 images: 2 classified" in capsys.readouterr().out


def test_predict_text_with_a_file_name_that_is_not_utf8(small_bundle, tmp_path):
    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    fundus_like(200).save(odd)
    result = run_cli("predict", str(odd), "--model", str(small_bundle))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "model confidence" in result.stdout


def test_batch_rows_are_kept_when_a_later_file_fails_unexpectedly(small_bundle, tmp_path, monkeypatch):
    from retina_desktop.services import batch

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        fundus_like(200, seed=i).save(folder / f"{i}.png")
    real = batch.classify_folder

    def dies_on_the_third(*args, **kwargs):
        for number, row in enumerate(real(*args, **kwargs)):
            if number == 2:
                raise RuntimeError("disk unplugged")
            yield row

    monkeypatch.setattr(batch, "classify_folder", dies_on_the_third)
    out = tmp_path / "results.csv"
    with pytest.raises(RuntimeError):
        main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)])
    assert not out.exists()
    rows = list(csv.DictReader((tmp_path / "results.partial.csv").open()))
    assert [r["file"].split("/")[-1] for r in rows] == ["0.png", "1.png"]
    monkeypatch.setattr(batch, "classify_folder", real)
    assert main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 3
    assert not (tmp_path / "results.partial.csv").exists()


def test_predict_with_names_too_long_runs_the_others(small_bundle, tmp_path, capsys):
    good = tmp_path / "good.png"
    fundus_like(200).save(good)
    long_name = tmp_path / ("a" * 300 + ".png")
    long_path = tmp_path.joinpath(*["d" * 200] * 25, "eye.png")
    files = [str(good), str(long_name), str(long_path), str(good)]
    assert main(["predict", *files, "--model", str(small_bundle), "--json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == files
    assert "label" in lines[0] and "label" in lines[3]
    assert "File name too long" in lines[1]["error"] and "aaa.png" in lines[1]["error"]
    assert "File name too long" in lines[2]["error"] and "eye.png" in lines[2]["error"]
    assert len(lines[2]["error"]) < 400


def test_labels_option_naming_a_missing_file_is_refused(small_bundle, tmp_path, image_file, capsys):
    missing = tmp_path / "my_labels.txt"
    for command in (["info"], ["predict", str(image_file)]):
        assert main([*command, "--model", str(small_bundle), "--labels", str(missing)]) == 1
        err = capsys.readouterr().err.strip()
        assert err == f'error: Labels file not found: "{missing}" (expected one "0 name" line per class)'


def test_hostile_inputs_through_the_real_command_line_give_no_traceback(small_bundle, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(small_bundle.parent, folder)
    sidecar = folder / "keras_model.json"
    sidecar.write_text(sidecar.read_text().replace('"temperature": 1.5', '"temperature": -1.0'))
    result = run_cli("info", "--model", str(folder / "keras_model.h5"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f'error: Model sidecar "{sidecar}" is not valid: "temperature" must be a number above 0, not -1.0'
    ]


def _answer_nan(monkeypatch):
    """Every model call answers NaN, as a model file with changed bytes did."""
    import numpy as np

    from retina_desktop.inference import model_runtime

    for runtime in (model_runtime.KerasRuntime, model_runtime.LiteRTRuntime):
        real = runtime.predict_with_features

        def damaged(self, batch, real=real):
            probs, features = real(self, batch)
            return np.full(np.shape(probs), np.nan), features

        monkeypatch.setattr(runtime, "predict_with_features", damaged)
        monkeypatch.setattr(runtime, "predict", lambda self, batch, damaged=damaged: damaged(self, batch)[0])


def test_nan_model_output_is_an_error_line_in_text_json_and_csv(small_bundle, tmp_path, capsys, monkeypatch):
    _answer_nan(monkeypatch)
    image = tmp_path / "eye.png"
    fundus_like(200).save(image)
    assert main(["predict", str(image), "--model", str(small_bundle), "--no-checks"]) == 1
    out, err = capsys.readouterr()
    assert "nan" not in out.lower() and f'error: "{image}": the model' in err and "NaN or infinity" in err
    assert main(["predict", str(image), "--model", str(small_bundle), "--json"]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert set(json.loads(line)) == {"file", "error"} and "NaN" not in line.replace("(NaN or", "")
    csv_out = tmp_path / "r.csv"
    assert main(["batch", str(tmp_path), "--out", str(csv_out), "--model", str(small_bundle)]) == 1
    [row] = list(csv.DictReader(csv_out.open()))
    assert row["label"] == "" and row["confidence"] == "" and "NaN or infinity" in row["error"]
    assert "0 classified, 1 errors" in capsys.readouterr().out


def test_predict_json_is_strict_even_if_a_nan_reaches_it(small_bundle, image_file, capsys, monkeypatch):
    from retina_desktop.core.prediction import Prediction

    real = Prediction.to_json_dict
    monkeypatch.setattr(Prediction, "to_json_dict", lambda self: {**real(self), "confidence": float("nan")})
    assert main(["predict", str(image_file), "--model", str(small_bundle), "--json"]) == 1
    line = capsys.readouterr().out.strip()
    assert "NaN" not in line.replace("(NaN or", "") and "error" in json.loads(line)


def test_a_second_batch_with_the_same_out_is_refused_and_the_first_is_whole(small_bundle, tmp_path, capsys,
                                                                             monkeypatch):
    from retina_desktop.services import batch

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        fundus_like(200, seed=i).save(folder / f"{i}.png")
    out = tmp_path / "r.csv"
    real = batch.classify_folder
    second: list[int] = []

    def another_run_starts_meanwhile(*args, **kwargs):
        for number, row in enumerate(real(*args, **kwargs)):
            if number == 1:  # the first run is half-way: a second starts on the same --out
                monkeypatch.setattr(batch, "classify_folder", real)
                second.append(main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]))
            yield row

    monkeypatch.setattr(batch, "classify_folder", another_run_starts_meanwhile)
    assert main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]) == 0
    assert second == [1]
    out_text, err = capsys.readouterr()
    assert f'error: Cannot write "{out}": another run is writing it now' in err
    rows = list(csv.DictReader(out.open()))
    assert [r["file"].split("/")[-1] for r in rows] == ["0.png", "1.png", "2.png"]
    assert all(r["label"] in CLASSES for r in rows)
    assert "3 images: 3 classified, 0 errors" in out_text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "r.csv"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to fill a disk")
def test_batch_onto_a_full_disk_is_one_line_and_keeps_the_old_csv(small_bundle, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    fundus_like(200).save(folder / "a.png")
    out = tmp_path / "r.csv"
    out.write_text("the old results\n")
    # Every write to the partial file fails as on a full disk.
    (tmp_path / "r.partial.csv").symlink_to("/dev/full")
    result = run_cli("batch", str(folder), "--out", str(out), "--model", str(small_bundle))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f'error: Cannot write "{out}": No space left on device' in result.stderr.splitlines()
    assert out.read_text() == "the old results\n"


def test_batch_does_not_read_back_its_own_output(small_bundle, tmp_path, capsys):
    fundus_like(200).save(tmp_path / "a.png")
    out = tmp_path / "results.png"  # an odd name, but the user's to choose
    assert main(["batch", str(tmp_path), "--out", str(out), "--model", str(small_bundle)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["file"].split("/")[-1] for r in rows] == ["a.png"]
    assert "1 images: 1 classified, 0 errors" in capsys.readouterr().out


def test_predict_json_into_a_pipe_closed_early_exits_quietly(small_bundle, tmp_path):
    image = tmp_path / "eye.png"
    fundus_like(200).save(image)
    files = " ".join([f"'{image}'"] * 40)
    command = (f"set -o pipefail; '{sys.executable}' -m retina_desktop predict {files} "
               f"--model '{small_bundle}' --json | head -1")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert len(result.stdout.splitlines()) == 1 and "label" in json.loads(result.stdout)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert result.returncode == 141  # as a Unix tool stopped by SIGPIPE


def test_batch_reads_what_predict_reads_and_names_what_it_skips(small_bundle, tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    picture = fundus_like(200)
    for name in ("a.png", "b.webp", "c.avif", "d.jp2"):
        picture.save(folder / name)
    (folder / "e.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (folder / "notes.txt").write_text("camera 2")
    out = tmp_path / "r.csv"
    assert main(["batch", str(folder), "--out", str(out), "--model", str(small_bundle)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["file"].split("/")[-1] for r in rows] == ["a.png", "b.webp", "c.avif", "d.jp2"]
    assert all(r["label"] in CLASSES for r in rows)
    err = capsys.readouterr().err
    assert "skipped 2 file(s) that are not images this app reads: e.heic, notes.txt" in err
