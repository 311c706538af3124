"""The experiment pipeline's bookkeeping on a toy data set (16 px, one epoch, a width-4 GAN):
the scarce cut, what the GAN saw, the balance, untouched val/test, resume, refusal, the report."""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import shutil

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec
from tests.conftest import class_folders
from training.cli import show_progress
from training.commands import pipeline as pipeline_verb
from training.commands.pipeline import add_arguments
from training.datasets import load_arrays, load_dataset
from training.experiments import pipeline
from training.experiments.config import CORE_CONDITIONS, PipelineOptions
from training.experiments.pipeline_data import samples_fingerprint, scarce_cut
from training.experiments.report import _differences_table, judge_target, metric_names, summarise
from training.experiments.runs import RunKey
from training.options import parse

TOY = ["--scarce", "glaucoma", "--scarce-n", "4", "--seeds", "0", "--size", "16", "--width-multiplier", "0.25",
       "--epochs", "1", "--batch-size", "8", "--gan-size", "16", "--gan-width", "4", "--gan-latent-dim", "8",
       "--gan-epochs", "1", "--gan-batch-size", "8", "--bootstrap", "20", "--modality", "fundus"]
# glaucoma: 10 train, 3 val, 3 test; normal: 20 train, 4 val, 4 test.
PLAN = {"glaucoma": (10, 3, 3), "normal": (20, 4, 4)}


def _toy_data(root):
    class_folders(root, list(PLAN), per_class=28, size=24)
    with open(root / "splits.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "group", "split"])
        for c, (label, sizes) in enumerate(PLAN.items()):
            splits = ["train"] * sizes[0] + ["val"] * sizes[1] + ["test"] * sizes[2]
            for i, split in enumerate(splits):
                writer.writerow([f"{label}/{c}{i:02d}_a.png", label, f"p{c}{i}", split])
    return root


def _args(root, out, *extra):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--data", str(root), "--out", str(out), *TOY, *extra])


def _options(root, out, *extra) -> PipelineOptions:
    return parse(PipelineOptions, _args(root, out, *extra))


def _quietly(call):
    """(what `call` returns, the lines `python -m training` would show while it runs)."""
    show_progress()
    with contextlib.redirect_stdout(io.StringIO()) as text:
        code = call()
    return code, text.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete toy experiment (2 settings x 4 conditions x 1 seed), recording what the GAN
    trainer and the classifier trainer were given. Two minutes of training on a quiet 2-core
    machine, done once for the module; the tests that read it are marked slow (CI runs them)."""
    import training.classifier.trainer
    import training.gan.trainer

    root = _toy_data(tmp_path_factory.mktemp("toy") / "data")
    out = root.parent / "run"
    gan_calls, classifier_calls = [], []
    real_gan, real_classifier = training.gan.trainer.train_gan, training.classifier.trainer.train_classifier

    def gan_spy(config, images, labels, out_dir, **kwargs):
        gan_calls.append({"images": images.copy(), "labels": labels.copy(), "out": out_dir})
        return real_gan(config, images, labels, out_dir, **kwargs)

    def classifier_spy(config, train, val, num_classes, out_dir, augment, **kwargs):
        classifier_calls.append({"config": config, "n_train": len(train[1]), "val": val, "out": out_dir})
        return real_classifier(config, train, val, num_classes, out_dir, augment, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training.gan.trainer, "train_gan", gan_spy)
        patch.setattr(training.classifier.trainer, "train_classifier", classifier_spy)
        code, log = _quietly(lambda: pipeline_verb.run(_args(root, out)))
    assert code == 0, log
    return {"root": root, "out": out, "gan": gan_calls, "classifier": classifier_calls, "log": log}


def _forbid_training(patch):
    import training.classifier.trainer
    import training.gan.synthesize
    import training.gan.trainer

    def refuse(*args, **kwargs):
        raise AssertionError("trained or synthesised again")

    for module, name in ((training.gan.trainer, "train_gan"), (training.classifier.trainer, "train_classifier"),
                         (training.gan.synthesize, "synthesize")):
        patch.setattr(module, name, refuse)


def test_the_cut_is_n_train_images_drawn_reproducibly(tmp_path):
    dataset = load_dataset(_toy_data(tmp_path / "data"))
    cut = scarce_cut(dataset, ("glaucoma",), 4, seed=0)
    glaucoma = [s for s in cut if s.label == "glaucoma"]
    assert len(glaucoma) == 4 and all(s.split == "train" for s in cut)
    assert [s for s in cut if s.label == "normal"] == [s for s in dataset.subset("train") if s.label == "normal"]
    assert cut == scarce_cut(load_dataset(tmp_path / "data"), ("glaucoma",), 4, seed=0)
    assert {s.file for s in scarce_cut(dataset, ("glaucoma",), 3)} < {s.file for s in cut}  # nested in N
    assert {s.file for s in scarce_cut(dataset, ("glaucoma",), 4, seed=2)} != {s.file for s in cut}
    with pytest.raises(UserError, match="only 10 glaucoma"):
        scarce_cut(dataset, ("glaucoma",), 10)


@pytest.mark.slow
def test_each_gan_saw_only_its_settings_training_images(finished):
    dataset = load_dataset(finished["root"])
    cut = scarce_cut(dataset, ("glaucoma",), 4)
    by_setting = {call["out"].name: call for call in finished["gan"]}
    assert sorted(by_setting) == ["cut", "full"] and len(finished["gan"]) == 2  # once per setting
    for setting, samples in (("cut", cut), ("full", dataset.subset("train"))):
        expected, labels = load_arrays(dataset, samples, InputSpec(16, 16, "crop", "none"), progress=False)
        assert np.array_equal(by_setting[setting]["images"], expected), setting
        assert np.array_equal(by_setting[setting]["labels"], labels), setting
        listed = list(csv.DictReader(open(finished["out"] / "gan" / setting / "trained_on.csv")))
        assert [(r["file"], r["label"]) for r in listed] == [(s.file, s.label) for s in samples]
    assert (finished["out"] / "gan" / "cut" / "generator.keras").exists()
    sidecar = json.loads((finished["out"] / "gan" / "cut" / "generator.json").read_text())
    assert sidecar["fit"] == "crop" and sidecar["display_aspect"] == 1.0  # square toy images, cropped


def test_the_full_settings_gan_takes_as_many_steps_as_the_cut_settings(tmp_path):
    dataset = load_dataset(_toy_data(tmp_path / "data"))
    config = pipeline.PipelineConfig(data=str(tmp_path / "data"), scarce=("glaucoma",), scarce_n=4, gan_epochs=10)
    experiment = pipeline.Experiment(tmp_path / "run", config, dataset, log=lambda *_: None)
    # cut: 4 glaucoma + 20 normal = 24 images; full: 10 + 20 = 30. 10 epochs x 24 = 240 images seen.
    assert experiment.gans.epochs("cut") == 10
    assert experiment.gans.epochs("full") == 8
    scarce_only = dataclasses.replace(config, gan_classes="scarce")  # 4 images against 10
    assert pipeline.Experiment(tmp_path / "run", scarce_only, dataset).gans.epochs("full") == 4


def test_the_gan_gets_the_loss_options_and_an_interrupted_one_keeps_its_architecture(tmp_path, monkeypatch):
    import training.gan.trainer

    dataset = load_dataset(_toy_data(tmp_path / "data"))
    config = pipeline.PipelineConfig(data=str(tmp_path / "data"), scarce=("glaucoma",), scarce_n=4, gan_size=16,
                                     gan_width=4, gan_latent_dim=8, gan_loss="nonsaturating", gan_r1_gamma=0.2)
    seen = []

    def stop(gan_config, *args, **kwargs):
        seen.append(gan_config)
        raise KeyboardInterrupt  # as if the session ended here

    monkeypatch.setattr(training.gan.trainer, "train_gan", stop)
    experiment = pipeline.Experiment(tmp_path / "run", config, dataset, log=lambda *_: None)
    with pytest.raises(KeyboardInterrupt):
        experiment.gans.ensure_generator("cut")
    assert (seen[0].loss, seen[0].r1_gamma, seen[0].minibatch_std) == ("nonsaturating", 0.2, True)
    # A GAN started before minibatch spread existed resumes without it (its checkpoint has none).
    started = experiment.gans.folder("cut") / "config.json"
    older = {k: v for k, v in json.loads(started.read_text()).items() if k not in ("minibatch_std", "conditional_norm")}
    started.write_text(json.dumps(older))
    with pytest.raises(KeyboardInterrupt):
        experiment.gans.ensure_generator("cut")
    assert (seen[1].minibatch_std, seen[1].conditional_norm, seen[1].r1_gamma) == (False, False, 0.2)


@pytest.mark.slow
def test_gan_images_top_the_scarce_class_up_to_the_largest(finished):
    out = finished["out"]
    for setting, expected in (("cut", 20 - 4), ("full", 20 - 10)):
        rows = list(csv.DictReader(open(out / "synthetic" / setting / "glaucoma" / "manifest.csv")))
        assert len(rows) == expected and len(list((out / "synthetic" / setting / "glaucoma").glob("*.png"))) == expected
        for condition in CORE_CONDITIONS:
            counts = pipeline.read_result(out, RunKey(setting, condition, 0))["train_counts"]
            total = {c: counts["real"][c] + counts["synthetic"][c] for c in ("glaucoma", "normal")}
            assert counts["real"] == {"glaucoma": 4 if setting == "cut" else 10, "normal": 20}
            if "gan" in condition:
                assert total == {"glaucoma": 20, "normal": 20}, (setting, condition)
            else:
                assert counts["synthetic"] == {"glaucoma": 0, "normal": 0}, (setting, condition)


@pytest.mark.slow
def test_classifiers_stop_on_real_val_and_are_judged_on_the_real_test_split(finished):
    dataset = load_dataset(finished["root"])
    spec = InputSpec(16, 16, "crop", "none")
    val = load_arrays(dataset, dataset.subset("val"), spec, progress=False)
    calls = finished["classifier"]
    assert len(calls) == 8
    sizes = {("cut", False): 24, ("cut", True): 40, ("full", False): 30, ("full", True): 40}
    for call in calls:
        condition, setting = call["out"].parent.name.replace("-", "+"), call["out"].parent.parent.name
        assert call["config"].augment == ("traditional" in condition) and call["config"].seed == 0
        assert call["n_train"] == sizes[(setting, "gan" in condition)], (setting, condition)
        assert np.array_equal(call["val"][0], val[0]) and np.array_equal(call["val"][1], val[1])
        result = pipeline.read_result(finished["out"], RunKey(setting, condition, 0))
        assert result["test_n"] == 7 and result["val_n"] == 7
        assert result["test_fingerprint"] == samples_fingerprint(dataset.subset("test"))
        assert result["metrics"]["per_class"]["glaucoma"]["n"] == 3
        assert 0 <= result["scarce_sensitivity"] <= 1 and not (call["out"] / "checkpoint").exists()
    assert "[8/8]" in finished["log"] and "ETA" in finished["log"]


@pytest.mark.slow
def test_a_rerun_skips_finished_runs_and_redoes_only_a_missing_one(finished, tmp_path, monkeypatch):
    import training.classifier.trainer

    out = shutil.copytree(finished["out"], tmp_path / "run")
    results = sorted(out.glob("runs/*/*/seed0/result.json"))
    assert len(results) == 8
    stamps = [p.stat().st_mtime_ns for p in results]
    with pytest.MonkeyPatch.context() as patch:
        _forbid_training(patch)
        code, log = _quietly(lambda: pipeline_verb.run(_args(finished["root"], out, "--resume")))
    assert code == 0 and "8 already finished" in log
    assert [p.stat().st_mtime_ns for p in results] == stamps

    missing = RunKey("cut", "gan", 0).folder(out) / "result.json"
    missing.unlink()
    trained = []
    real = training.classifier.trainer.train_classifier
    with pytest.MonkeyPatch.context() as patch:
        _forbid_training(patch)  # the GAN and its images are cached: only the classifier runs
        patch.setattr(training.classifier.trainer, "train_classifier",
                      lambda config, *a, **k: trained.append((config.augment, a[3])) or real(config, *a, **k))
        code, log = _quietly(lambda: pipeline_verb.run(_args(finished["root"], out)))
    assert code == 0 and trained == [(False, missing.parent)] and missing.exists()
    others = [(p.stat().st_mtime_ns, s) for p, s in zip(results, stamps) if p != missing]
    assert len(others) == 7 and all(now == before for now, before in others)


@pytest.mark.slow
def test_other_options_are_refused_but_the_selection_may_change(finished, tmp_path):
    out = shutil.copytree(finished["out"], tmp_path / "run")
    with pytest.raises(UserError, match=r"--epochs 1 \(now 2\).*--gan-width 4 \(now 8\)"):
        pipeline_verb.run(_args(finished["root"], out, "--epochs", "2", "--gan-width", "8"))
    with pytest.raises(UserError, match="--scarce-n 4 \\(now 3\\)"):
        pipeline_verb.run(_args(finished["root"], out, "--scarce-n", "3"))
    dataset = load_dataset(finished["root"])
    config = _options(finished["root"], out, "--seeds", "0,1", "--settings", "cut").config
    stored = pipeline.start_or_check(out, config, dataset)
    assert json.loads((out / "pipeline.json").read_text())["config"]["seeds"] == [0, 1]
    assert "--seeds 0,1" in stored["command"]
    moved = shutil.copytree(finished["root"], tmp_path / "data")  # one image moved from train to test
    splits = (moved / "splits.csv").read_text()
    (moved / "splits.csv").write_text(splits.replace("glaucoma/000_a.png,glaucoma,p00,train",
                                                     "glaucoma/000_a.png,glaucoma,p00,test"))
    with pytest.raises(UserError, match="splits differ"):
        pipeline.start_or_check(out, config, load_dataset(moved))


@pytest.mark.slow
def test_the_report_has_every_row_the_verdict_and_rebuilds_alone(finished, tmp_path):
    out = finished["out"]
    report = (out / "report" / "report.md").read_text()
    for setting in ("cut", "full"):
        assert f"## Results: {setting}" in report
    for condition in CORE_CONDITIONS:
        assert report.count(f"| {condition} | 1/1 | ") == 2, condition
    assert "Target met." in report or "Target not met" in report
    assert "--scarce glaucoma --scarce-n 4" in report and "1 of 8" not in report and "8 of 8" in report
    (out / "report" / "report.md").unlink()
    docs = tmp_path / "docs" / "toy"
    with pytest.MonkeyPatch.context() as patch:
        _forbid_training(patch)
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        code, _ = _quietly(lambda: pipeline_verb.run(parser.parse_args(
            ["--out", str(out), "--report-only", "--docs", str(docs)])))
    assert code == 0 and (out / "report" / "report.md").read_text() == report
    copied = (docs / "report.md").read_text()
    for name in ("metrics.png", "gan_samples_cut.png", "gan_samples_full.png"):
        assert f"]({name})" in copied and (docs / name).stat().st_size > 0, name
    summary = json.loads((docs / "summary.json").read_text())
    assert summary["target_met"] in (True, False) and summary["verdict"] in copied


def _fake(condition, seed, sensitivity, auc, setting="cut"):
    return {"setting": setting, "condition": condition, "seed": seed, "scarce_sensitivity": sensitivity,
            "sensitivity": {"glaucoma": sensitivity}, "macro_f1": 0.5, "macro_auc": auc}


def _verdict(figures, seeds=(0, 1, 2)):
    """figures: {condition: (sensitivities per seed, AUCs per seed)}."""
    config = pipeline.PipelineConfig(data="d", scarce=("glaucoma",), seeds=seeds, settings=("cut",))
    results = [_fake(c, s, sens[i], aucs[i]) for c, (sens, aucs) in figures.items() for i, s in enumerate(seeds)]
    return judge_target(summarise(results, config), config)


def test_the_target_is_judged_on_seed_means():
    base = {"none": ([0.40, 0.42, 0.44], [0.90, 0.90, 0.90]), "traditional": ([0.50, 0.50, 0.50], [0.91, 0.92, 0.93])}
    met = _verdict(base | {"gan": ([0.56, 0.55, 0.57], [0.91, 0.92, 0.93]), "gan+traditional": ([0.5] * 3, [0.9] * 3)})
    assert met.met is True and "(gan)" in met.sentence and "+6.0 points" in met.sentence
    assert "non-GAN condition (traditional)" in met.sentence
    small = _verdict(base | {"gan": ([0.54] * 3, [0.92] * 3), "gan+traditional": ([0.53] * 3, [0.92] * 3)})
    assert small.met is False and "gain is too small" in small.sentence and "+4.0 points" in small.sentence
    worse = _verdict(base | {"gan": ([0.30] * 3, [0.92] * 3), "gan+traditional": ([0.35] * 3, [0.92] * 3)})
    assert worse.met is False and "GAN images lower" in worse.sentence and "-15.0 points" in worse.sentence
    # -1 point against seeds that spread by 2: no gain, but not shown to be a loss either.
    noisy = _verdict(base | {"gan": ([0.47, 0.49, 0.51], [0.92] * 3), "gan+traditional": ([0.3] * 3, [0.92] * 3)})
    assert "the gain is too small" in noisy.sentence and "lower" not in noisy.sentence
    # +8.3 points on the means, from seeds that spread by tens of points (oct-dme's first run): chance.
    chancy = _verdict(base | {"gan": ([0.80, 0.55, 0.40], [0.92] * 3), "gan+traditional": ([0.3] * 3, [0.92] * 3)})
    assert chancy.met is False and "the gain may be chance" in chancy.sentence and "+8.3 points" in chancy.sentence
    assert "p = 0.55" in chancy.sentence
    # +20 points, but mean AUC 0.80 < best non-GAN 0.92 - pooled std (0.01 / sqrt(2)): a loss.
    lossy = _verdict(base | {"gan": ([0.70] * 3, [0.80] * 3), "gan+traditional": ([0.6] * 3, [0.8] * 3)})
    assert lossy.met is False and "loses macro AUC" in lossy.sentence
    # Within the pooled spread is not a loss: 0.915 >= 0.92 - sqrt((0.01^2 + 0.01^2) / 2).
    close = _verdict(base | {"gan": ([0.60] * 3, [0.905, 0.915, 0.925]), "gan+traditional": ([0.6] * 3, [0.9] * 3)})
    assert close.met is True
    partial = pipeline.PipelineConfig(data="d", scarce=("glaucoma",), settings=("cut",))
    results = [_fake("none", 0, 0.4, 0.9), _fake("gan", 0, 0.9, 0.9)]
    pending = judge_target(summarise(results, partial), partial)
    assert pending.met is None and "cannot be judged yet" in pending.sentence


def test_the_report_sets_each_gan_condition_against_its_baseline_with_a_chance_test():
    config = pipeline.PipelineConfig(data="d", scarce=("glaucoma",), settings=("cut",))
    figures = {"none": [0.40, 0.42, 0.44], "traditional": [0.50, 0.52, 0.54],
               "gan": [0.60, 0.62, 0.64], "gan+traditional": [0.30, 0.60, 0.45]}
    results = [_fake(c, s, v, 0.9) for c, values in figures.items() for s, v in enumerate(values)]
    table = "\n".join(_differences_table(summarise(results, config)["cut"], metric_names(config))).splitlines()
    assert table[4].startswith("| gan − none | +0.200 (p = ")  # seeds far apart: p tiny
    assert float(table[4].split("p = ")[1].split(")")[0]) < 0.01
    assert table[5].startswith("| gan+traditional − traditional | -0.070 (p = 0.")
    assert float(table[5].split("p = ")[1].split(")")[0]) > 0.05  # a spread of 0.3: may be chance
    one_seed = [_fake(c, 0, 0.5, 0.9) for c in figures]
    assert _differences_table(summarise(one_seed, config)["cut"], metric_names(config)) == []
