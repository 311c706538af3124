"""The unfamiliar-image flag (retina_desktop/inference/familiarity.py, training/classifier/familiarity.py): fitting,
the threshold, storage and its refusal of foreign or malformed files, the same distance on both
backends, and the warning in every output (CLI text and JSON, batch CSV, PDF report)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.model_card import ModelMetadata
from retina_desktop.core.settings import Settings
from retina_desktop.inference.familiarity import (
    FORMAT,
    Familiarity,
    FamiliarityError,
    choose_threshold,
    load_for_model,
    path_for,
    pooled_features,
)
from tests.conftest import CLASSES, fundus_like

NO_CHECKS = Settings(checks_enabled=False)


def _clusters(n: int = 400, d: int = 40, seed: int = 0, draws: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of correlated Gaussian features: the distribution is fixed by `seed`, the
    images drawn from it by `draws`."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 4, (3, d))
    mixing = rng.normal(0, 1, (d, d)) / np.sqrt(d)
    rng = np.random.default_rng([seed, draws])
    labels = rng.integers(0, 3, n)
    return means[labels] + rng.normal(0, 1, (n, d)) @ mixing, labels


def _fitted(seed: int = 0) -> tuple[Familiarity, np.ndarray]:
    features, _ = _clusters(seed=seed)
    record = Familiarity.fit(features[:300], components=8, neighbours=5)
    val = record.distance(features[300:])
    return record.with_threshold(choose_threshold(val, 95)), features


# ---- fitting and the threshold ----------------------------------------------------------------


def test_new_images_like_the_training_images_lie_near_and_others_far() -> None:
    record, features = _fitted()
    same, _ = _clusters(n=200, seed=0, draws=2)  # the same distribution, new images
    assert (record.distance(same) > record.threshold).mean() < 0.15
    rng = np.random.default_rng(5)
    far = features[:50] + rng.normal(0, 6, features[:50].shape)  # off every direction it varied in
    assert (record.distance(far) > record.threshold).mean() > 0.95
    other, _ = _clusters(n=50, seed=7)  # another distribution altogether
    assert (record.distance(other) > record.threshold).mean() > 0.95
    # Only the direction counts: a brighter copy of an image (longer features) is as familiar.
    assert np.allclose(record.distance(3 * features[300:310]), record.distance(features[300:310]))
    # Brute force agrees: the 5th nearest training point in the projected unit-length space.
    query = (
        features[300:303] / np.linalg.norm(features[300:303], axis=1, keepdims=True) - record.mean
    ) @ record.projection
    gaps = np.linalg.norm(query[:, None] - record.points[None].astype(np.float64), axis=2)
    assert np.allclose(np.sort(gaps, axis=1)[:, 4], record.distance(features[300:303]), atol=1e-5)


def test_threshold_is_the_validation_percentile_and_flags_that_share_of_new_images() -> None:
    record, _ = _fitted()
    held_out, _ = _clusters(n=4000, seed=0, draws=1)  # the same distribution, new images
    flagged = record.is_unfamiliar(record.distance(held_out))
    assert 0.01 < flagged.mean() < 0.10  # the 95th percentile of 100 validation images
    assert choose_threshold(np.arange(1.0, 101.0), 97.5) == pytest.approx(97.525)
    assert not record.is_unfamiliar(record.threshold) and record.is_unfamiliar(record.threshold + 1e-9)
    with pytest.raises(ValueError, match="no validation distances"):
        choose_threshold(np.array([np.nan]))


def test_components_are_limited_by_the_feature_dimension_and_the_images() -> None:
    features, _ = _clusters(n=100, d=40)
    record = Familiarity.fit(features, components=128)
    assert record.projection.shape == (40, 40) and record.points.shape == (100, 40)
    assert np.allclose(record.projection.T @ record.projection, np.eye(40), atol=1e-8)
    assert Familiarity.fit(features[:30], components=128).projection.shape == (40, 30)
    with pytest.raises(ValueError, match="more than 10 images"):
        Familiarity.fit(features[:10])


def test_pooled_features_average_each_map() -> None:
    maps = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(2, 3, 3, 4)
    assert np.allclose(pooled_features(maps), maps.mean(axis=(1, 2)))
    with pytest.raises(ValueError, match="feature maps"):
        pooled_features(maps[0])


# ---- storage ----------------------------------------------------------------------------------


def test_round_trip_keeps_every_number(tmp_path) -> None:
    record, features = _fitted()
    record = Familiarity(record.mean, record.projection, record.points, record.neighbours, record.threshold, "ab" * 32)
    path = tmp_path / "keras_model.familiarity.npz"
    record.save(path)
    loaded = Familiarity.load(path)
    assert loaded.model_sha256 == "ab" * 32 and loaded.threshold == record.threshold
    assert np.allclose(loaded.distance(features), record.distance(features), atol=1e-6)  # stored as float32
    assert path_for(tmp_path / "keras_model.h5") == path


def _write(path: Path, **arrays) -> Path:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def _good_arrays(record: Familiarity) -> dict:
    return {
        "format": np.array(FORMAT), "model_sha256": np.array(""), "mean": record.mean,
        "projection": record.projection, "points": record.points, "neighbours": np.array(record.neighbours),
        "threshold": np.array(record.threshold),
    }


@pytest.mark.parametrize("change, message", [
    ({"format": np.array("something else/1")}, "format"),
    ({"projection": np.zeros((3, 7))}, "projection has shape"),
    ({"points": np.zeros((300, 3), np.float32)}, "points has shape"),
    ({"mean": np.ones(40, dtype=np.int64)}, "not floating-point"),
    ({"neighbours": np.array(0)}, "neighbours must be"),
    ({"neighbours": np.array(2.5)}, "neighbours must be"),
    ({"threshold": np.array([1.0, 2.0])}, "threshold must be one number"),
    ({"points": np.full((300, 8), np.nan, np.float32)}, "not finite"),
])
def test_malformed_files_are_refused_in_one_line_naming_the_file(tmp_path, change, message) -> None:
    record, _ = _fitted()
    path = _write(tmp_path / "m.familiarity.npz", **{**_good_arrays(record), **change})
    with pytest.raises(FamiliarityError, match=message) as caught:
        Familiarity.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_pickles_and_garbage_are_refused(tmp_path) -> None:
    pickled = tmp_path / "p.familiarity.npz"
    _write(pickled, format=np.array([{"a": 1}], dtype=object))
    garbage = tmp_path / "g.familiarity.npz"
    garbage.write_bytes(b"not an archive at all")
    missing = _write(tmp_path / "x.familiarity.npz", format=np.array(FORMAT))
    for path, message in ((pickled, "not a numpy .npz"), (garbage, "not a numpy .npz"), (missing, "lacks")):
        with pytest.raises(FamiliarityError, match=message) as caught:
            Familiarity.load(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_load_for_model_refuses_another_models_record_and_takes_the_sidecars_threshold(tmp_path) -> None:
    record, _ = _fitted()
    model = tmp_path / "keras_model.h5"
    Familiarity(record.mean, record.projection, record.points, record.neighbours, record.threshold,
                "a" * 64).save(path_for(model))
    found, problem = load_for_model(model, "a" * 64, {"threshold": 3.5})
    assert problem == "" and found.threshold == 3.5
    found, problem = load_for_model(model, "b" * 64)
    assert found is None and "fitted for another version" in problem and str(path_for(model)) in problem
    path_for(model).write_bytes(b"junk")
    found, problem = load_for_model(model, "a" * 64)
    assert found is None and str(path_for(model)) in problem and "no unfamiliar-image flag" in problem
    assert load_for_model(tmp_path / "other.h5", None) == (None, "")


def test_the_sidecar_entry_is_validated() -> None:
    base = {"classes": ["a", "b"]}
    assert ModelMetadata.from_dict({**base, "familiarity": {"threshold": 1.4}}).familiarity["threshold"] == 1.4
    with pytest.raises(ValueError, match="familiarity"):
        ModelMetadata.from_dict({**base, "familiarity": []})
    with pytest.raises(ValueError, match="familiarity.threshold"):
        ModelMetadata.from_dict({**base, "familiarity": {"threshold": -1}})


# ---- the model: fitting by the training verb, both backends, every output ---------------------


@pytest.fixture(scope="module")
def flagged_bundle(small_bundle, tmp_path_factory) -> Path:
    """The small bundle with a familiarity record fitted by the training code on a toy data
    set, and a foreign key in its sidecar (another tool's) that must survive the update."""
    from training.classifier.familiarity import fit_for_model
    from training.datasets import load_dataset

    folder = tmp_path_factory.mktemp("flagged")
    for name in (small_bundle.name, "labels.txt", "keras_model.json"):
        shutil.copy2(small_bundle.parent / name, folder / name)
    sidecar = folder / "keras_model.json"
    data = json.loads(sidecar.read_text())
    data["someone_elses"] = {"kept": True}
    sidecar.write_text(json.dumps(data))
    root = tmp_path_factory.mktemp("toydata")
    rows = ["file,label,group,split"]
    for c, label in enumerate(CLASSES):
        (root / label).mkdir()
        for i in range(12):
            name = f"{label}/{c}{i:02d}.png"
            fundus_like(64, seed=i + 100 * c, tint=(200, 90 + 30 * c, 40)).save(root / name)
            rows.append(f"{name},{label},g{c}{i},{('train', 'train', 'val', 'test')[i % 4]}")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    wrong = tmp_path_factory.mktemp("wrong")
    (wrong / "noise").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        from PIL import Image

        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(wrong / "noise" / f"n{i}.png")
    entry = fit_for_model(folder / "keras_model.h5", load_dataset(root), externals=[root], wrongs=[wrong],
                          command="python -m training familiarity ...", quiet=True)
    assert set(entry["figures"]) == {"val", "test", "external", "wrong_inputs"}
    return folder / "keras_model.h5"


def test_the_verb_stores_the_record_and_its_sidecar_entry(flagged_bundle) -> None:
    from retina_desktop.inference.bundle import load_bundle
    from retina_desktop.inference.litert_backend import file_sha256

    record = Familiarity.load(path_for(flagged_bundle))
    assert record.model_sha256 == file_sha256(flagged_bundle)
    data = json.loads(flagged_bundle.with_suffix(".json").read_text())
    assert data["someone_elses"] == {"kept": True}  # updated in place, not rewritten from a record
    entry = data["familiarity"]
    assert entry["threshold"] == pytest.approx(record.threshold, rel=1e-5)
    assert entry["file"] == path_for(flagged_bundle).name and entry["command"].startswith("python -m training")
    test = entry["figures"]["test"]
    assert test["n"] == 12 and 0 <= test["flagged_share"] <= 1 and "error_rate_unflagged" in test
    [wrong] = entry["figures"]["wrong_inputs"].values()
    assert wrong["n"] == 4 and wrong["by_folder"]["noise"]["n"] == 4
    bundle = load_bundle(flagged_bundle)
    assert bundle.familiarity is not None and bundle.familiarity_problem == ""


def test_a_malformed_record_leaves_the_model_working_without_the_flag(flagged_bundle, tmp_path, capsys) -> None:
    from retina_desktop.cli import main

    folder = tmp_path / "model"
    folder.mkdir()
    for source in flagged_bundle.parent.iterdir():
        shutil.copy2(source, folder / source.name)
    path_for(folder / "keras_model.h5").write_bytes(b"broken")
    image = tmp_path / "eye.png"
    fundus_like(96).save(image)
    assert main(["predict", str(image), "--model", str(folder / "keras_model.h5"), "--no-checks", "--json"]) == 0
    out, err = capsys.readouterr()
    line = json.loads(out)
    assert line["label"] in CLASSES and line["unfamiliar"] is None and line["familiarity_distance"] is None
    warnings = [w for w in err.splitlines() if "familiarity" in w.lower()]
    assert len(warnings) == 1 and "keras_model.familiarity.npz" in warnings[0]


@pytest.mark.skipif(__import__("importlib").util.find_spec("ai_edge_litert") is None,
                    reason="ai-edge-litert is not installed")
def test_both_backends_give_the_same_distance(flagged_bundle, tmp_path, monkeypatch) -> None:
    from retina_desktop.services.classify import Classifier
    from training.classifier.export import export_model

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "model"
    folder.mkdir()
    for source in flagged_bundle.parent.iterdir():
        shutil.copy2(source, folder / source.name)
    export_model(folder / "keras_model.h5")
    rng = np.random.default_rng(3)
    images = np.concatenate([
        np.stack([np.asarray(fundus_like(48, seed=s)) for s in range(3)]),
        rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8),
    ])
    keras_side = Classifier(folder / "keras_model.h5", backend="keras", settings=NO_CHECKS)
    litert_side = Classifier(folder / "keras_model.h5", backend="litert", settings=NO_CHECKS)
    assert litert_side.bundle().backend == "litert"
    _, keras_features = keras_side.predict_features(images)
    _, litert_features = litert_side.predict_features(images)
    record = keras_side.bundle().familiarity
    keras_d, litert_d = record.distance(keras_features), record.distance(litert_features)
    assert np.abs(keras_d - litert_d).max() < 1e-4 * max(1.0, float(keras_d.max()))


def _unfamiliar_classifier(flagged_bundle, threshold: float):
    """The flagged bundle's classifier with its threshold moved, so an image is flagged or not."""
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(flagged_bundle, backend="keras", settings=NO_CHECKS)
    bundle = classifier.bundle()
    bundle.familiarity = bundle.familiarity.with_threshold(threshold)
    return classifier


def test_the_flag_is_a_warning_beside_the_answer_in_every_output(flagged_bundle, tmp_path, capsys, monkeypatch) -> None:
    from retina_desktop import cli
    from retina_desktop.services import report
    from retina_desktop.services.batch import BatchRow, csv_fields, csv_header

    image = tmp_path / "eye.png"
    fundus_like(96).save(image)
    classifier = _unfamiliar_classifier(flagged_bundle, 1e-6)  # everything is unfamiliar
    prediction = classifier.predict_file(image)
    answer = prediction.answer()
    assert prediction.unfamiliar is True and answer.label in CLASSES  # the answer stays
    assert answer.text().endswith("; unfamiliar image: output may be unreliable")
    assert "Unfamiliar image: unlike the images this model learned from" in answer.warning()
    assert "its output may be unreliable" in answer.warning()
    assert answer.headline().startswith(("Model output", "Unsure"))
    fields = prediction.to_json_dict()
    assert fields["unfamiliar"] is True and fields["familiarity_distance"] > fields["familiarity_threshold"]
    assert fields["label"] == answer.label
    row = dict(zip(csv_header(CLASSES), csv_fields(BatchRow(str(image), prediction), CLASSES)))
    assert row["unfamiliar"] == "true" and float(row["familiarity_distance"]) > 0 and row["label"] == answer.label

    # The CLI (text and JSON) and the batch CSV, through the real commands.
    monkeypatch.setattr(cli, "_classifier", lambda args: classifier)
    assert cli.main(["predict", str(image)]) == 0
    assert "unfamiliar image: output may be unreliable" in capsys.readouterr().out
    assert cli.main(["predict", str(image), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["unfamiliar"] is True
    out = tmp_path / "results.csv"
    assert cli.main(["batch", str(tmp_path), "--out", str(out)]) == 0
    assert [r["unfamiliar"] for r in csv.DictReader(out.open())] == ["true"]
    assert "1 of them unfamiliar" in capsys.readouterr().out

    # The PDF report's notes carry the warning (the GUI shows the same Answer.warning()).
    figure = report.build_report_figure(prediction, image=np.asarray(fundus_like(96)))
    texts = " ".join(t.get_text() for ax in figure.axes for t in ax.texts).replace("\n", " ")
    assert "Unfamiliar image: unlike the images this model learned from" in texts

    familiar = _unfamiliar_classifier(flagged_bundle, 1e6).predict_file(image)
    assert familiar.unfamiliar is False and "unfamiliar" not in familiar.answer().text().lower()
    assert "Unfamiliar" not in familiar.answer().warning()


def test_no_record_means_no_flag_and_empty_fields(small_bundle, image_file) -> None:
    from retina_desktop.services.batch import BatchRow, csv_fields, csv_header
    from retina_desktop.services.classify import Classifier

    prediction = Classifier(small_bundle, backend="keras", settings=NO_CHECKS).predict_file(image_file)
    assert prediction.unfamiliar is None and prediction.to_json_dict()["unfamiliar"] is None
    row = dict(zip(csv_header(CLASSES), csv_fields(BatchRow(str(image_file), prediction), CLASSES)))
    assert row["unfamiliar"] == "" and row["familiarity_distance"] == ""
