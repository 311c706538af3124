"""`classify --synthetic DIR` and `screening-probe --synthetic DIR`: GAN images as training images.

Only `synthesize` folders are taken (a manifest, and every PNG marked synthetic), each bad
folder is one line, the images join the train split alone, and a resume with other folders is
refused.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec
from retina_desktop.services.synthetic_samples import SyntheticImage, synthetic_png_info
from tests.conftest import class_folders, fundus_like
from training.synthetic_images import read_synthetic, with_synthetic

SPEC = InputSpec(24, 24, "crop", "none")


def _synthetic_folder(folder, label="dme", n=3, marked=True):
    folder.mkdir(parents=True)
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "seed", "latent_index"])
        for i in range(n):
            pixels = np.asarray(fundus_like(32, seed=i))
            name = f"{label}_s0_{i:05d}.png"
            info = synthetic_png_info(SyntheticImage(pixels, label, 0, i), "runs/g/generator.keras") if marked else None
            Image.fromarray(pixels).save(folder / name, pnginfo=info)
            writer.writerow([name, label, 0, i])
    return folder


def test_a_synthesize_folder_becomes_fitted_training_images(tmp_path):
    folder = _synthetic_folder(tmp_path / "gan")
    images, labels = read_synthetic([folder], ["dme", "normal"], SPEC)
    assert images.shape == (3, 24, 24, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0]
    train = (np.zeros((2, 24, 24, 3), np.uint8), np.array([1, 1]))
    joined = with_synthetic(train, [folder], ["dme", "normal"], SPEC, log=lambda *a: None)
    assert joined[0].shape[0] == 5 and joined[1].tolist() == [1, 1, 0, 0, 0]
    assert with_synthetic(train, (), ["dme", "normal"], SPEC) is train


def test_bad_folders_are_one_line_naming_the_problem(tmp_path):
    classes = ["dme", "normal"]
    with pytest.raises(UserError, match="no manifest.csv"):
        read_synthetic([tmp_path / "nowhere"], classes, SPEC)
    with pytest.raises(UserError, match='class "glaucoma"'):
        read_synthetic([_synthetic_folder(tmp_path / "other", label="glaucoma")], classes, SPEC)
    with pytest.raises(UserError, match="not marked as a synthetic image"):
        read_synthetic([_synthetic_folder(tmp_path / "photos", marked=False)], classes, SPEC)
    outside = _synthetic_folder(tmp_path / "outside")
    (outside / "manifest.csv").write_text("file,label\n../photos/dme_s0_00000.png,dme\n")
    with pytest.raises(UserError, match="not an image in"):
        read_synthetic([outside], classes, SPEC)
    (outside / "manifest.csv").write_text("name,class\nx.png,dme\n")
    with pytest.raises(UserError, match="needs the columns file and label"):
        read_synthetic([outside], classes, SPEC)


def test_classify_trains_on_the_synthetic_images_and_resume_needs_the_same_ones(tmp_path, monkeypatch):
    import training.classifier.classify as classify
    from training.classifier.config import ClassifierConfig, ClassifyOptions
    from training.cli import build_parser
    from training.options import parse

    root = class_folders(tmp_path / "data", ["dme", "normal"], per_class=12, size=40)
    folder = _synthetic_folder(tmp_path / "gan", n=4)
    seen = {}

    class Stop(Exception):
        pass

    def trainer(config, train, val, *args, **kwargs):
        seen["train"], seen["val"], seen["config"] = train, val, config
        raise Stop

    monkeypatch.setattr(classify, "train_classifier", trainer)
    out = tmp_path / "model"
    args = build_parser().parse_args(["classify", "--data", str(root), "--out", str(out), "--size", "24",
                                      "--synthetic", str(folder)])
    with pytest.raises(Stop):
        classify.run_classify(parse(ClassifyOptions, args))
    real_train = sum(1 for row in csv.DictReader(open(out / "splits.csv")) if row["split"] == "train")
    assert len(seen["train"][0]) == real_train + 4 and (seen["train"][1][-4:] == 0).all()
    assert len(seen["val"][0]) < real_train  # val stays real
    saved = json.loads((out / "config.json").read_text())
    assert saved["synthetic"] == [str(folder.resolve())]
    assert ClassifierConfig.from_dict(saved) == seen["config"]
    (out / "checkpoint").mkdir()
    (out / "checkpoint" / "state.json").write_text("{}")
    again = build_parser().parse_args(["classify", "--data", str(root), "--out", str(out), "--size", "24", "--resume"])
    with pytest.raises(UserError, match="synthetic"):
        classify.refuse_changed_resume(out, parse(ClassifyOptions, again).config)


def test_the_screening_head_sees_synthetic_features_as_ungraded_training_rows(tmp_path):
    from training.experiments.screening_sets import FeatureSet, with_synthetic_features

    class Network:
        def predict_on_batch(self, batch):
            return batch.reshape(len(batch), -1)[:, :5]

    train = FeatureSet("train", np.ones((2, 5), np.float32), np.array([1, 1]), np.array([0, 0]),
                       np.array(["odir", "odir"]), ["a.png", "b.png"])
    joined = with_synthetic_features(train, Network(), [_synthetic_folder(tmp_path / "gan")], ["dme", "normal"],
                                     SPEC, log=lambda *a: None)
    assert joined.features.shape == (5, 5) and joined.labels.tolist() == [1, 1, 0, 0, 0]
    assert joined.grades.tolist() == [0, 0, -1, -1, -1] and joined.sources.tolist()[-1] == "synthetic"
