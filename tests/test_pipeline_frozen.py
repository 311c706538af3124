"""The pipeline's frozen classifier (ImageNet Lite0 features + softmax head), on toy data.

What is tested is the protocol (which features each condition's head sees, the confidence
filter, the per-source figures, re-use of computed features); the toy images are noise.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from tests.test_pipeline import PLAN, _args, _options, _quietly, _toy_data
from training.commands import pipeline as pipeline_verb
from training.experiments import pipeline
from training.experiments.features import FeatureStore, HeadConfig, augmented_view, image_key, train_head
from training.experiments.runs import RunKey

FROZEN = ["--classifier", "frozen-lite0", "--views", "2", "--size", "32",
          "--conditions", "none,traditional,gan,gan+traditional,filtered-gan,filtered-gan+traditional"]


pytestmark = pytest.mark.usefixtures("imagenet_lite0")


def _with_sources(root):
    """Give the toy split a source column: even rows 'a', odd rows 'b'."""
    rows = list(csv.DictReader(open(root / "splits.csv")))
    with open(root / "splits.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "label", "group", "split", "source"])
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow(dict(row, source="ab"[i % 2]))
    return root


@pytest.mark.slow
def test_a_frozen_experiment_runs_every_condition_and_reports_per_source(tmp_path):
    root = _with_sources(_toy_data(tmp_path / "data"))
    external = _toy_data(tmp_path / "external")  # judged on all its images, its "other camera"
    rows = list(csv.DictReader(open(external / "splits.csv")))
    with open(external / "splits.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "label", "group", "split"])
        writer.writeheader()
        writer.writerows(dict(row, split="test") for row in rows)
    out = tmp_path / "run"
    code, log = _quietly(lambda: pipeline_verb.run(_args(root, out, *FROZEN, "--external", str(external))))
    assert code == 0, log
    counts = {}
    for setting in ("cut", "full"):
        for condition in ("none", "traditional", "gan", "gan+traditional", "filtered-gan",
                          "filtered-gan+traditional"):
            result = pipeline.read_result(out, RunKey(setting, condition, 0))
            assert result["classifier"]["kind"] == "frozen-lite0"
            assert result["classifier"]["views"] == (3 if "traditional" in condition else 1)
            synthetic = result["train_counts"]["synthetic"]["glaucoma"]
            assert synthetic == (0 if "gan" not in condition else 20 - (4 if setting == "cut" else 10))
            assert set(result["per_source"]) == {"a", "b"}
            assert result["per_source"]["a"]["n"] + result["per_source"]["b"]["n"] == sum(p[2] for p in PLAN.values())
            counts[(setting, condition)] = synthetic
            assert result["external"]["n"] == sum(sum(p) for p in PLAN.values())
            assert set(result["external"]["versus_normal"]["diseases"]) == {"glaucoma"}
    # The filter chose from twice as many GAN images as it kept.
    pool = list(csv.DictReader(open(out / "synthetic-x2" / "cut" / "glaucoma" / "manifest.csv")))
    assert len(pool) == 2 * counts[("cut", "filtered-gan")]
    report = (out / "report" / "report.md").read_text()
    assert "filtered-gan+traditional" in report and "glaucoma vs normal AUC" in report


def test_features_are_computed_once_per_image_and_view(tmp_path, monkeypatch):
    import training.experiments.linear_probe as linear_probe

    calls = []
    real = linear_probe.pooled_features
    monkeypatch.setattr(linear_probe, "pooled_features",
                        lambda model, images, *a, **k: calls.append(len(images)) or real(model, images, *a, **k))
    images = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    store = FeatureStore(tmp_path, 32, "fundus", camera=True, log=lambda *_: None)
    first = store.features(images, 1)
    again = FeatureStore(tmp_path, 32, "fundus", camera=True).features(images[[4, 0]], 1)
    assert calls == [5]  # the second store read them back from disk
    np.testing.assert_array_equal(again, first[[4, 0]])
    assert not np.allclose(store.features(images[:1], 0), first[:1])  # view 0 is the image itself
    assert calls == [5, 1]


def test_an_augmented_view_depends_only_on_the_image_and_the_view():
    image = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    one = augmented_view(image, image_key(image, 1), "fundus", camera=True)
    np.testing.assert_array_equal(one, augmented_view(image, image_key(image, 1), "fundus", camera=True))
    assert not np.array_equal(one, augmented_view(image, image_key(image, 2), "fundus", camera=True))
    assert not np.array_equal(one, image)


def test_the_head_learns_separable_features_and_its_seed_matters():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 40)
    centres = rng.normal(size=(3, 16)) * 3
    x = centres[y] + rng.normal(size=(120, 16))
    val = (centres[y] + rng.normal(size=(120, 16)), y)
    quick = HeadConfig(epochs=15, patience=5, batch_size=16, learning_rate=0.01)
    a = train_head([x], y, val, val[0], 3, seed=0, config=quick)
    b = train_head([x], y, val, val[0], 3, seed=1, config=quick)
    assert np.mean(a.probs.argmax(axis=1) == y) > 0.9 and a.best_score > 0.95
    assert not np.allclose(a.probs, b.probs)


def test_filtered_conditions_need_the_frozen_classifier_and_a_foreign_full_gan_is_refused(tmp_path):
    root = _toy_data(tmp_path / "data")
    with pytest.raises(UserError, match="only with --classifier frozen-lite0"):
        _options(root, tmp_path / "run", "--conditions", "none,filtered-gan")
    generator = tmp_path / "g.keras"
    generator.write_bytes(b"not used")
    generator.with_suffix(".json").write_text(json.dumps(
        {"classes": ["glaucoma", "normal"], "size": 16, "fit": "crop",
         "provenance": {"train_images": {"glaucoma": 9, "normal": 20}}}))
    config = _options(root, tmp_path / "run", "--gan-full", str(generator)).config
    from training.datasets import load_dataset

    experiment = pipeline.Experiment(tmp_path / "run", config, load_dataset(root), log=lambda *_: None)
    with pytest.raises(UserError, match="training images"):
        experiment.gans.ensure_generator("full")
