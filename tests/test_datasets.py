"""Data sets: class discovery, splits.csv, and patient-grouped stratified splitting."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec
from tests.conftest import fundus_like
from training.datasets import display_aspect, load_arrays, load_dataset, make_group_split


def _folder(tmp_path, per_class=30):
    root = tmp_path / "data"
    for c, label in enumerate(["healthy", "sick"]):
        (root / label).mkdir(parents=True)
        for patient in range(per_class // 2):
            for eye in ("left", "right"):
                fundus_like(24, seed=c * 1000 + patient).save(root / label / f"{c}{patient:03d}_{eye}.png")
    return root


def test_group_split_never_puts_a_patient_on_two_sides(tmp_path):
    dataset = load_dataset(_folder(tmp_path, per_class=40), seed=3)
    sides = defaultdict(set)
    for sample in dataset.samples:
        sides[sample.group].add(sample.split)
    assert all(len(s) == 1 for s in sides.values())
    # Both eyes of a patient share a group: "0001_left.png" and "0001_right.png".
    assert len(sides) == len(dataset.samples) // 2


def test_group_split_is_stratified_and_seeded(tmp_path):
    files = [(f"{label}/{offset + p:04d}_{eye}.png", label)
             for label, n, offset in (("a", 300, 0), ("b", 60, 5000))
             for p in range(n) for eye in ("l", "r")]
    samples = make_group_split(files, r"^(\d+)_", 0.1, 0.2, seed=1)
    counts = Counter((s.label, s.split) for s in samples)
    for label, n in (("a", 600), ("b", 120)):
        assert counts[(label, "test")] / n == pytest.approx(0.2, abs=0.03)
        assert counts[(label, "val")] / n == pytest.approx(0.1, abs=0.03)
    again = make_group_split(files, r"^(\d+)_", 0.1, 0.2, seed=1)
    other = make_group_split(files, r"^(\d+)_", 0.1, 0.2, seed=2)
    assert again == samples and other != samples


def test_splits_csv_is_used_when_present(tmp_path):
    root = _folder(tmp_path, per_class=4)
    (root / "splits.csv").write_text(
        "file,label,group,split\nhealthy/0000_left.png,healthy,p0,train\nsick/1000_left.png,sick,p1,test\n"
    )
    dataset = load_dataset(root)
    assert [(s.file, s.split) for s in dataset.samples] == [
        ("healthy/0000_left.png", "train"), ("sick/1000_left.png", "test")]


def test_splits_csv_with_an_unknown_label(tmp_path):
    root = _folder(tmp_path, per_class=2)
    (root / "splits.csv").write_text("file,label,group,split\nx.png,unicorn,p,train\n")
    with pytest.raises(UserError, match="unicorn"):
        load_dataset(root)


def test_a_folder_without_classes(tmp_path):
    (tmp_path / "only").mkdir()
    fundus_like(8).save(tmp_path / "only" / "a.png")
    with pytest.raises(UserError, match="at least two class sub-folders"):
        load_dataset(tmp_path)


def test_arrays_come_from_the_app_loader_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dataset = load_dataset(_folder(tmp_path, per_class=4))
    spec = InputSpec(16, 20, "pad", "none")
    images, labels = load_arrays(dataset, dataset.samples, spec, progress=False)
    assert images.shape == (8, 16, 20, 3) and images.dtype == np.uint8
    assert sorted(Counter(labels.tolist()).values()) == [4, 4]
    again, _ = load_arrays(dataset, dataset.samples, spec, progress=False)
    assert np.array_equal(images, again)
    assert list((tmp_path / "cache").rglob("*.npz"))


@pytest.mark.data
def test_display_aspect_undoes_a_stretch_and_is_square_otherwise(tmp_path):
    """B-scans stretched into a square are shown at their median proportions again."""
    from PIL import Image

    for i, (w, h) in enumerate([(100, 40), (120, 48), (90, 45)]):  # 2.5, 2.5, 2.0
        for label in ("a", "b"):
            (tmp_path / label).mkdir(exist_ok=True)
            Image.new("L", (w, h), 128).save(tmp_path / label / f"{label}{i}.png")
    dataset = load_dataset(tmp_path)
    assert display_aspect(dataset, dataset.samples, "stretch") == 2.5
    assert display_aspect(dataset, dataset.samples, "crop") == 1.0
    assert display_aspect(dataset, dataset.samples, "pad") == 1.0


def test_shared_fundus4_splits_keep_patients_apart(shared_data):
    dataset = load_dataset(shared_data / "fundus4")
    sides = defaultdict(set)
    for sample in dataset.samples:
        sides[sample.group].add(sample.split)
    assert all(len(s) == 1 for s in sides.values())
    assert dataset.classes == ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def test_a_source_column_is_read_and_written_back(tmp_path):
    from training.datasets import write_splits

    root = _folder(tmp_path, per_class=4)
    (root / "splits.csv").write_text(
        "file,label,group,split,source\n"
        "healthy/0000_left.png,healthy,p0,train,odir\nsick/1000_left.png,sick,p1,test,eyepacs\n"
    )
    dataset = load_dataset(root)
    assert [s.source for s in dataset.samples] == ["odir", "eyepacs"]
    write_splits(dataset, tmp_path / "copy.csv")
    assert (tmp_path / "copy.csv").read_text().splitlines()[0] == "file,label,group,split,source"
    (root / "splits.csv").unlink()
    (root / "splits.csv").write_bytes((tmp_path / "copy.csv").read_bytes())
    assert load_dataset(root).samples == dataset.samples


def test_splits_without_a_source_column_keep_four_columns(tmp_path):
    from training.datasets import write_splits

    dataset = load_dataset(_folder(tmp_path, per_class=4))
    assert {s.source for s in dataset.samples} == {""}
    write_splits(dataset, tmp_path / "splits.csv")
    assert (tmp_path / "splits.csv").read_text().splitlines()[0] == "file,label,group,split"


def test_a_subset_of_a_models_classes_maps_onto_the_models_indices(tmp_path, monkeypatch):
    from training.datasets import class_indices

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dataset = load_dataset(_folder(tmp_path, per_class=4))  # classes: healthy, sick
    index_of = class_indices(dataset, ["other", "sick", "x", "healthy"], "model.h5")
    assert index_of == {"healthy": 3, "sick": 1}
    _, labels = load_arrays(dataset, dataset.samples, InputSpec(8, 8, "crop", "none"), progress=False,
                            index_of=index_of)
    assert sorted(set(labels.tolist())) == [1, 3]


def test_a_class_the_model_does_not_know_is_refused(tmp_path):
    from training.datasets import class_indices

    dataset = load_dataset(_folder(tmp_path, per_class=4))
    with pytest.raises(UserError, match=r"'sick'.*model\.h5"):
        class_indices(dataset, ["healthy", "glaucoma"], "model.h5")


def test_a_patient_in_two_splits_is_refused(tmp_path):
    root = _folder(tmp_path, per_class=4)
    (root / "splits.csv").write_text(
        "file,label,group,split\nhealthy/0000_left.png,healthy,p0,train\n"
        "sick/1000_left.png,sick,p1,test\nhealthy/0000_right.png,healthy,p0,val\n"
    )
    with pytest.raises(UserError) as raised:
        load_dataset(root)
    message = str(raised.value)
    assert "splits.csv" in message and '"p0"' in message and "train" in message and "val" in message
    assert "line 4" in message and "\n" not in message


def test_a_file_named_in_splits_but_missing_is_refused_with_its_line(tmp_path):
    root = _folder(tmp_path, per_class=4)
    (root / "splits.csv").write_text(
        "file,label,group,split\nhealthy/0000_left.png,healthy,p0,train\nsick/gone.png,sick,p1,test\n"
    )
    with pytest.raises(UserError) as raised:
        load_dataset(root)
    message = str(raised.value)
    assert "splits.csv" in message and "line 3" in message and "sick/gone.png" in message
    assert "\n" not in message


@pytest.mark.parametrize("with_splits", [False, True])
def test_an_empty_class_folder_is_refused(tmp_path, with_splits):
    root = _folder(tmp_path, per_class=4)
    (root / "glaucoma").mkdir()
    (root / "glaucoma" / "notes.txt").write_text("not an image")
    if with_splits:
        (root / "splits.csv").write_text(
            "file,label,group,split\nhealthy/0000_left.png,healthy,p0,train\nglaucoma/1.png,glaucoma,p1,test\n"
        )
    with pytest.raises(UserError) as raised:
        load_dataset(root)
    assert str(root / "glaucoma") in str(raised.value) and "no images" in str(raised.value)


def test_hidden_folders_are_not_classes(tmp_path):
    root = _folder(tmp_path, per_class=4)
    (root / ".ipynb_checkpoints").mkdir()
    assert load_dataset(root).classes == ["healthy", "sick"]
