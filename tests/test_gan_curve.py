"""The GAN learning curve (issue #36): its protocol and its figures.

What is tested is what keeps the curve honest and its answers right: nested points, no held-back
real image reaching a point's generator or classifier, the same number of added images in every
condition, the sensitivity at a fixed specificity, the verdict rule, and resuming. The slow test
runs the whole curve on toy images (noise, so its figures mean nothing).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from training.datasets import drawn_order
from training.experiments import curve_report, gan_curve
from training.experiments.curve_generators import GeneratorRecipe
from training.experiments.curve_plan import ALL, CONFIG_FILE, CurveConfig, parse_points


class _Sample:
    def __init__(self, file, label):
        self.file, self.label = file, label


def test_points_are_nested_and_depend_on_the_file_names_only():
    samples = [_Sample(f"glaucoma/{i:03d}.png", "glaucoma") for i in range(120)]
    samples += [_Sample(f"normal/{i:03d}.png", "normal") for i in range(30)]
    order = drawn_order(samples, "glaucoma")
    assert len(order) == 120 and {s.label for s in order} == {"glaucoma"}
    shuffled = [samples[i] for i in np.random.default_rng(3).permutation(len(samples))]
    assert [s.file for s in drawn_order(shuffled, "glaucoma")] == [s.file for s in order]
    assert {s.file for s in order[:25]} <= {s.file for s in order[:50]} <= {s.file for s in order[:100]}
    assert [s.file for s in order[:25]] != sorted(s.file for s in order[:25])  # drawn, not the first names


def test_sensitivity_is_read_at_a_specificity_of_090():
    negatives = np.linspace(0, 1, 100)  # the threshold is their 90th percentile, 0.9
    positives = np.array([0.95, 0.99, 0.5, 0.2])
    positive = np.r_[np.zeros(100, bool), np.ones(4, bool)]
    sensitivity, auc = curve_report.figures(positive, np.r_[negatives, positives])
    assert sensitivity == 0.5
    assert 0.5 < auc < 1
    assert np.isnan(curve_report.figures(np.ones(3, bool), np.arange(3.0))[0])


def test_resamples_keep_the_class_and_the_rest_apart():
    positive = np.r_[np.ones(7, bool), np.zeros(40, bool)]
    draws = curve_report.resamples(positive, n=50)
    assert draws.shape == (50, 47)
    assert all(positive[d].sum() == 7 for d in draws)


@pytest.mark.parametrize("ci, expected", [
    ([0.01, 0.08], "helps"), ([-0.09, -0.002], "hurts"), ([-0.025, 0.028], "no effect"), ([-0.05, 0.04], "undecided"),
])
def test_the_verdict_needs_an_interval_that_decides(ci, expected):
    assert curve_report.verdict(ci) == expected


def test_points_parse_and_bad_ones_are_one_line():
    assert parse_points("25, 50,all", "--points") == (25, 50, ALL)
    for bad in ("25,x", "0", "-3"):
        with pytest.raises(UserError, match="--points"):
            parse_points(bad, "--points")


def test_a_rerun_with_other_options_is_refused(tmp_path):
    gan_curve.start_or_check(tmp_path, CurveConfig(data="d"))
    gan_curve.start_or_check(tmp_path, CurveConfig(data="d"))  # the same options resume
    with pytest.raises(UserError, match="other options.*added"):
        gan_curve.start_or_check(tmp_path, CurveConfig(data="d", added=100))
    (tmp_path / CONFIG_FILE).write_text("{cut")
    with pytest.raises(UserError, match="not a learning-curve record"):
        gan_curve.start_or_check(tmp_path, CurveConfig(data="d"))


def _fake_generator(folder: Path, counts: dict) -> Path:
    """A generator file whose sidecar says what each of its parts learnt from (gan-combine's form)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "generator.keras"
    path.write_bytes(b"not read by the check")
    parts = [{"classes": [label], "provenance": {"train_images": {label: n}}} for label, n in counts.items()]
    path.with_suffix(".json").write_text(json.dumps({
        "kind": "conditional generator (EMA weights)", "classes": list(counts), "size": 16, "latent_dim": 8,
        "provenance": {"parts": parts}}))
    return path


def test_the_shipped_generator_joins_only_when_it_learnt_from_exactly_the_train_split(tmp_path):
    from tests.test_screening import _graded_data
    from training.experiments.curve_plan import SHIPPED, conditions_at

    root = _graded_data(tmp_path / "data", per_class=24, size=40)
    right = _fake_generator(tmp_path / "right", {"glaucoma": 12, "normal": 12})
    curve = gan_curve.Curve(tmp_path / "run", CurveConfig(data=str(root), scarce=("glaucoma",), points=(4, ALL),
                                                          shipped_generator=str(right)))
    assert curve.shipped_generator("glaucoma") == right
    assert SHIPPED in conditions_at(curve.config, ALL) and SHIPPED not in conditions_at(curve.config, 4)
    for counts in ({"glaucoma": 15}, {"normal": 12}):  # saw more glaucoma images than train holds; none at all
        wrong = _fake_generator(tmp_path / f"wrong{len(str(counts))}", counts)
        curve = gan_curve.Curve(tmp_path / "run", CurveConfig(data=str(root), scarce=("glaucoma",), points=(4, ALL),
                                                              shipped_generator=str(wrong)))
        with pytest.raises(UserError, match="learnt glaucoma from .* not from this train split's 12"):
            curve.shipped_generator("glaucoma")


def _config_of(command: str) -> CurveConfig:
    import shlex

    from training.cli import build_parser
    from training.experiments.config import GanCurveOptions
    from training.options import parse

    return gan_curve.curve_config(parse(GanCurveOptions, build_parser().parse_args(shlex.split(command))))


def test_the_verb_takes_each_modalitys_defaults_and_its_command_line_remakes_the_curve():
    from training.experiments.curve_plan import command_line

    fundus = _config_of("gan-curve --data d --out o")
    assert (fundus.points, fundus.seeds, fundus.scarce) == ((25, 50, 100, ALL), 5, ("glaucoma", "cataract"))
    assert (fundus.shipped_generator, fundus.C, fundus.confirm) == ("models/generator.keras", 0.001, "searched")
    assert (fundus.recipe.loss, fundus.recipe.base_epochs) == ("hinge", 8)
    oct_curve = _config_of("gan-curve --data d --out o --modality oct --base-epochs 50")
    assert (oct_curve.scarce, oct_curve.points, oct_curve.C) == (("DME",), (25, 50, ALL), None)
    assert (oct_curve.confirm, oct_curve.confirm_model) == ("cnn", "models/oct/keras_model.h5")
    assert (oct_curve.recipe.loss, oct_curve.recipe.r1_gamma, oct_curve.recipe.base_epochs) == (
        "nonsaturating", 0.2, 50
    )
    assert _config_of("gan-curve --data d --out o --shipped-generator ''").shipped_generator == ""
    for config in (fundus, oct_curve, _config_of("gan-curve --data d --out o --shipped-generator '' --points 10,all")):
        # the report's command is the one that resumes the same run
        assert _config_of(command_line(config, "o").removeprefix("python -m training ")) == config


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_toy_curve_keeps_held_back_images_out_and_resumes(tmp_path, monkeypatch, imagenet_lite0):
    import training.experiments.screening_head as screening_head
    from tests.test_screening import _graded_data
    from training.datasets import load_dataset
    from training.experiments.curve_generators import base_generator, point_generator

    root = _graded_data(tmp_path / "data", per_class=24, size=40)
    recipe = GeneratorRecipe(size=16, width=4, d_width=8, base_epochs=1, finetune_steps=2)
    # "Shipped": a generator that learnt glaucoma from every train image, made beforehand.
    dataset = load_dataset(root)
    train_split = dataset.subset("train")
    shipped_base = base_generator(dataset, train_split, ("glaucoma",), 12, recipe, tmp_path / "shipped" / "base",
                                  str(root), "fundus", log=lambda *a: None)
    shipped = point_generator(dataset, train_split, "glaucoma", 12, shipped_base, recipe, tmp_path / "shipped" / "g",
                              str(root), "fundus", log=lambda *a: None)
    config = CurveConfig(data=str(root), scarce=("glaucoma",), points=(4, ALL), seeds=2, added=6, size=32,
                         recipe=recipe, shipped_generator=str(shipped))
    fits = []
    real_fit = screening_head.fit_head

    def spy(features, labels, grades, dr, choice, seed=0, **kwargs):
        fits.append((labels.copy(), grades.copy()))
        return real_fit(features, labels, grades, dr, choice, seed=seed, **kwargs)

    monkeypatch.setattr(screening_head, "fit_head", spy)
    out = tmp_path / "run"
    summary = gan_curve.run_curve(out, config, log=lambda *a: None)

    train = [r for r in _rows(root / "splits.csv") if r["split"] == "train"]
    glaucoma = [r["file"] for r in train if r["label"] == "glaucoma"]
    first4 = {r["file"] for r in _rows(out / "gan" / "glaucoma" / "4" / "trained_on.csv")}
    assert len(first4) == 4 and first4 <= set(glaucoma)
    base = _rows(out / "gan" / "base" / "trained_on.csv")
    assert {r["file"] for r in base if r["label"] == "glaucoma"} == first4  # the base saw only the smallest point
    assert len([r for r in base if r["label"] != "glaucoma"]) == len([r for r in train if r["label"] != "glaucoma"])
    assert len(_rows(out / "gan" / "glaucoma" / "all" / "trained_on.csv")) == len(glaucoma)

    index = sorted({r["label"] for r in train}).index("glaucoma")
    # real (1 seed) + 3 conditions x 2 seeds, at 2 points, and the shipped generator's 2 seeds
    # at "all": the class holds the point's real images, plus 6 added (ungraded) ones in every
    # condition but real.
    fits = fits[:2 * (1 + 3 * 2) + 2]  # the search's fits follow
    counts = sorted(int((labels == index).sum()) for labels, _ in fits)
    assert counts == sorted([4] + [10] * 6 + [len(glaucoma)] + [len(glaucoma) + 6] * 8)
    assert "shipped-gan" in summary["glaucoma"]["all"]["all"] and "shipped-gan" not in summary["glaucoma"]["4"]["all"]
    assert "gan - traditional" in summary["glaucoma"]["4"]["all"]["differences"]
    # The most promising cell is confirmed with the head searched on val: 3 seeds x 2 conditions.
    assert len(list((out / "cells-searched").rglob("seed*.npz"))) == 6
    report = (out / "report.md").read_text()
    assert "Paired differences" in report and "head searched on val" in report
    assert (out / "curves.png").stat().st_size > 10_000 and (out / "samples.jpg").is_file()

    fits.clear()
    (out / "report.md").unlink()
    gan_curve.run_curve(out, config, log=lambda *a: None)  # everything is on disk: no fit runs again
    assert fits == [] and (out / "report.md").is_file()
    record = json.loads((out / CONFIG_FILE).read_text())
    assert record["calls"] == 2 and record["seconds"] > 0  # the total time counts both calls
    assert "over 2 call(s)" in (out / "report.md").read_text()
    with pytest.raises(UserError, match="other options"):
        gan_curve.run_curve(out, CurveConfig(**{**config.__dict__, "seeds": 3}), log=lambda *a: None)


def test_the_cell_to_confirm_is_the_largest_gain_of_either_gan_condition():
    def entry(gan, both):
        differences = {f"{c} - traditional": {"sensitivity": {"value": v}, "auc": {"value": 0.0}}
                       for c, v in (("gan", gan), ("both", both))}
        return {"all": {"differences": differences}}

    summary = {"glaucoma": {"25": entry(0.01, 0.04), "50": entry(-0.01, 0.05)}, "cataract": {"25": entry(0.02, 0.0)}}
    assert curve_report.most_promising(summary) == ("glaucoma", "50", "both")


@pytest.mark.slow
def test_an_oct_style_curve_confirms_with_the_shipped_models_own_recipe(tmp_path, imagenet_lite0):
    from tests.test_screening import _graded_data
    from training.classifier.config import ClassifierConfig

    root = _graded_data(tmp_path / "data", per_class=24, size=40)
    recipe = GeneratorRecipe(size=16, width=4, d_width=0, fit="stretch", loss="nonsaturating", r1_gamma=0.2,
                             base_epochs=1, finetune_steps=2)
    # The "shipped" CNN: only its record is read, the recipe it was trained with.
    shipped_cnn = tmp_path / "oct" / "keras_model.h5"
    shipped_cnn.parent.mkdir()
    cnn = ClassifierConfig(height=16, width=24, fit="stretch", width_multiplier=0.25, epochs=2, batch_size=8, seed=7)
    shipped_cnn.with_suffix(".json").write_text(json.dumps({"provenance": {"config": cnn.to_dict()}}))
    config = CurveConfig(data=str(root), modality="oct", scarce=("glaucoma",), points=(4, ALL), seeds=2, added=6,
                         size=32, recipe=recipe, C=None, confirm="cnn", confirm_model=str(shipped_cnn))
    out = tmp_path / "run"
    summary = gan_curve.run_curve(out, config, log=lambda *a: None)

    # Every cell's head was searched on val: its record holds the choice, not a held C.
    choices = {json.loads(str(np.load(p)["choice"]))["C"] for p in (out / "cells").rglob("seed*.npz")}
    assert choices and choices <= {0.0003, 0.001, 0.003, 0.01, 0.03}
    # The confirmation trained the recipe (2 epochs, the seed its own) on the cell's images:
    # the train split with the class cut to the point, plus the 6 added ones.
    label, point, condition = curve_report.most_promising(summary)
    train = [r for r in _rows(root / "splits.csv") if r["split"] == "train"]
    real = 4 if point == "4" else sum(r["label"] == "glaucoma" for r in train)
    others = sum(r["label"] != "glaucoma" for r in train)
    cells = sorted((out / "cells-cnn").rglob("seed*.npz"))
    assert len(cells) == 6
    for path in cells:
        with np.load(path) as stored:
            assert int(stored["train_rows"]) == others + real + 6
            assert stored["test_probs"].shape == (len([r for r in _rows(root / "splits.csv") if r["split"] == "test"]),
                                                  4)
    assert not [p for p in (out / "cells-cnn").rglob("*") if p.is_dir() and p.name.startswith("seed")]  # no checkpoints
    report = (out / "report.md").read_text()
    assert "# Does GAN data help the shipped OCT recipe?" in report
    assert "trained with the shipped model's own recipe" in report and "2 epochs of batch 8" in report
