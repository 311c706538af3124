"""Evaluation figures on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.inference.calibration import apply_temperature
from training.cli import show_progress
from training.evaluation.metrics import (
    binary_operating_point,
    compute_metrics,
    expected_calibration_error,
    fit_temperature,
)


def test_perfect_predictions():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    metrics = compute_metrics(probs, labels, ["a", "b", "c"], n_bootstrap=50)
    assert metrics["accuracy"] == 1 and metrics["balanced_accuracy"] == 1 and metrics["macro_auc"] == 1
    assert metrics["per_class"]["b"]["sensitivity"] == 1 and metrics["per_class"]["b"]["specificity"] == 1
    assert metrics["confusion_matrix"] == [[3, 0, 0], [0, 3, 0], [0, 0, 3]]
    assert metrics["accuracy_ci"] == [1.0, 1.0]


def test_known_confusion():
    # 4 of class 0 (one called 1), 2 of class 1 (both right).
    labels = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 1, 1])
    probs = np.eye(2)[predicted] * 0.8 + 0.1
    metrics = compute_metrics(probs, labels, ["neg", "pos"], n_bootstrap=200)
    assert metrics["accuracy"] == pytest.approx(5 / 6, abs=1e-4)
    assert metrics["balanced_accuracy"] == pytest.approx((3 / 4 + 1) / 2, abs=1e-4)
    pos = metrics["per_class"]["pos"]
    assert pos["sensitivity"] == 1 and pos["specificity"] == 0.75
    assert pos["precision"] == pytest.approx(2 / 3, abs=1e-4)
    low, high = metrics["accuracy_ci"]
    assert low < metrics["accuracy"] <= high


def test_ece_of_a_calibrated_and_an_overconfident_model():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 20000)
    correct = rng.uniform(size=20000) < confidence
    labels = np.where(correct, 0, 1)
    probs = np.stack([confidence, 1 - confidence], axis=1)
    assert expected_calibration_error(probs, labels) < 0.02
    overconfident = np.stack([np.full(20000, 0.99), np.full(20000, 0.01)], axis=1)
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.99 - correct.mean(), abs=0.01)


def test_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (5000, 3))
    true_probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true_probs])
    sharpened = apply_temperature(true_probs, 1 / 2.5)  # a model 2.5x too confident
    assert fit_temperature(sharpened, labels) == pytest.approx(2.5, rel=0.1)


def test_operating_point_at_specificity():
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.concatenate([np.linspace(0, 0.5, 10), np.linspace(0.45, 1, 10)])
    probs = np.stack([1 - scores, scores], axis=1)
    point = binary_operating_point(probs, labels, positive=1, min_specificity=0.9)
    assert point.specificity >= 0.9 and point.sensitivity == 1.0
    assert list(point.to_dict()) == ["min_specificity", "sensitivity", "specificity", "threshold"]


def test_sensitivity_by_source_splits_a_class_by_where_its_files_came_from():
    from training.evaluation.subsets import parse_sources, sensitivity_by_source

    files = ["g/1_left.jpg", "g/2_right.jpg", "g/Glaucoma_3.png", "g/Glaucoma_4.png", "n/5_left.jpg", "n/x.bmp"]
    labels = np.array([0, 0, 0, 0, 1, 1])
    # ODIR misses one of its two glaucoma images; the small set finds both of its own.
    predicted = np.array([1, 0, 0, 0, 1, 1])
    sources = parse_sources([r"ODIR=/\d+_(left|right)\.jpg$", "small set=Glaucoma_"])
    table = sensitivity_by_source(np.eye(2)[predicted], labels, files, ["glaucoma", "normal"], sources)
    assert table["ODIR"]["glaucoma"] == {"n": 2, "found": 1, "sensitivity": 0.5}
    assert table["small set"]["glaucoma"] == {"n": 2, "found": 2, "sensitivity": 1.0}
    assert table["ODIR"]["normal"]["n"] == 1 and table["other"]["normal"]["n"] == 1
    assert "normal" not in table["small set"]


@pytest.mark.parametrize("bad", ["no-equals-sign", "=pattern", "x=("])
def test_a_bad_source_option_is_a_clear_error(bad):
    from retina_desktop.core.errors import UserError
    from training.evaluation.subsets import parse_sources

    with pytest.raises(UserError, match="--source"):
        parse_sources([bad])


# --- generalisation: each disease against normal, per source, heatmaps inside the field of view

CLASSES4 = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def test_disease_against_healthy_by_hand():
    from training.evaluation.subsets import disease_versus_healthy

    # Three disease images (p = .9, .8, .3) and three healthy ones (p = .6, .2, .1): 8 of the 9
    # (disease, healthy) pairs are ordered right, so AUC = 8/9. The app called the disease images
    # DR, cataract, normal (1 found, 2 referred) and the healthy ones normal, normal, DR.
    p_disease = np.array([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    is_disease = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    reported = np.array([1, 0, 3, 3, 3, 1])
    figures = disease_versus_healthy(p_disease, is_disease, reported, disease=1, healthy=3, n_bootstrap=300)
    assert figures["n_disease"] == 3 and figures["n_healthy"] == 3
    assert figures["auc"] == pytest.approx(8 / 9, abs=1e-4)
    assert figures["sensitivity"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["referred"] == pytest.approx(2 / 3, abs=1e-4)
    assert figures["specificity"] == pytest.approx(2 / 3, abs=1e-4)
    for name in ("auc", "sensitivity", "referred", "specificity"):
        low, high = figures[f"{name}_ci"]
        assert low <= figures[name] <= high


def test_the_rank_auc_equals_scikit_learns():
    from sklearn.metrics import roc_auc_score

    from training.evaluation.metrics import rank_auc

    rng = np.random.default_rng(3)
    positive = rng.uniform(size=200) < 0.3
    score = np.round(rng.uniform(size=200) + positive * 0.3, 1)  # rounded: ties
    assert rank_auc(positive, score) == pytest.approx(roc_auc_score(positive, score))
    assert np.isnan(rank_auc(np.ones(3, bool), np.arange(3)))


def _subset_case():
    """Only diabetic retinopathy (index 1) and normal (3) images, for a four-class model."""
    labels = np.array([1, 1, 1, 1, 3, 3, 3, 3, 3, 3])
    p_dr = np.array([0.7, 0.6, 0.2, 0.5, 0.1, 0.3, 0.05, 0.2, 0.1, 0.4])
    probs = np.zeros((10, 4))
    probs[:, 1] = p_dr
    probs[:, 3] = 1 - p_dr - 0.05
    probs[:, 0] = 0.05
    return probs, labels


def test_a_data_set_with_two_of_four_classes():
    from training.evaluation.subsets import versus_healthy

    probs, labels = _subset_case()
    metrics = compute_metrics(probs, labels, CLASSES4, n_bootstrap=50)
    assert metrics["classes_present"] == ["diabetic_retinopathy", "normal"]
    assert set(metrics["per_class"]) == {"diabetic_retinopathy", "normal"}
    # DR images .7 .6 .5 .2 against normal .4 .3 .2 .2(.1) ... : 21.5 of 24 pairs right.
    assert metrics["per_class"]["diabetic_retinopathy"]["auc"] == pytest.approx(21.5 / 24, abs=1e-4)
    assert not np.isnan(metrics["macro_auc"])
    reported = probs.argmax(1)  # DR for .7 .6 .5, normal otherwise
    versus = versus_healthy(probs, labels, reported, CLASSES4, n_bootstrap=50)
    assert versus["healthy_class"] == "normal" and list(versus["diseases"]) == ["diabetic_retinopathy"]
    dr = versus["diseases"]["diabetic_retinopathy"]
    assert (dr["n_disease"], dr["n_healthy"]) == (4, 6)
    assert dr["auc"] == pytest.approx(21.5 / 24, abs=1e-4)
    assert dr["sensitivity"] == 0.75 and dr["referred"] == 0.75 and dr["specificity"] == 1.0
    # No healthy images, or a model without the healthy class: nothing to compare.
    assert versus_healthy(probs[:4], labels[:4], reported[:4], CLASSES4) is None
    assert versus_healthy(probs, labels, reported, CLASSES4, "healthy") is None


def _source_folder(tmp_path):
    from tests.conftest import fundus_like

    root = tmp_path / "data"
    rows = ["file,label,group,split,source"]
    for label, per_source in (("cataract", {"odir": 2, "small": 3}), ("normal", {"odir": 4})):
        (root / label).mkdir(parents=True)
        for source, n in per_source.items():
            for i in range(n):
                name = f"{label}/{source}_{i}.png"
                fundus_like(16, seed=i).save(root / name)
                rows.append(f"{name},{label},{source}-{label}-{i},test,{source}")
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


def test_per_source_figures_come_from_the_source_column(tmp_path):
    from training.datasets import class_indices, load_dataset
    from training.evaluation.subsets import per_source, sample_origins

    dataset = load_dataset(_source_folder(tmp_path))
    samples = dataset.subset("test")
    origins = sample_origins(samples)
    index_of = class_indices(dataset, CLASSES4, "m.h5")
    labels = np.array([index_of[s.label] for s in samples])
    # odir: cataract .9 .4, normal .45 .3 .2 .1 -> cataract AUC 7/8; one of two cataracts found.
    # small: three cataract photographs and nothing else -> no AUC, all found.
    p_cataract = {"odir": iter([0.9, 0.4, 0.45, 0.3, 0.2, 0.1]), "small": iter([0.8, 0.7, 0.9])}
    probs = np.zeros((len(samples), 4))
    for i, source in enumerate(origins):
        probs[i, 0] = next(p_cataract[source])
        probs[i, 3] = 1 - probs[i, 0]
    table = per_source(probs, labels, probs.argmax(1), origins, CLASSES4, n_bootstrap=100)
    assert list(table) == ["odir", "small"]
    odir = table["odir"]
    assert odir["n"] == 6 and odir["classes"]["cataract"]["n"] == 2 and odir["classes"]["normal"]["n"] == 4
    assert odir["classes"]["cataract"]["auc"] == pytest.approx(7 / 8, abs=1e-4)
    assert odir["classes"]["normal"]["auc"] == pytest.approx(7 / 8, abs=1e-4)
    assert odir["macro_auc"] == pytest.approx(7 / 8, abs=1e-4)
    assert odir["classes"]["cataract"]["sensitivity"] == 0.5 and odir["classes"]["normal"]["sensitivity"] == 1.0
    small = table["small"]
    assert small["classes"]["cataract"] == {"n": 3, "found": 3, "sensitivity": 1.0, "sensitivity_ci": [1.0, 1.0],
                                            "auc": None, "auc_ci": None}
    assert small["macro_auc"] is None and small["macro_auc_over"] == []


def test_without_a_source_column_the_source_patterns_name_the_sources(tmp_path):
    from training.datasets import Sample
    from training.evaluation.subsets import sample_origins

    samples = [Sample("a/odir_1.png", "a", "1", "test"), Sample("a/x.png", "a", "2", "test")]
    assert sample_origins(samples) is None
    assert sample_origins(samples, {"ODIR": "odir_"}) == ["ODIR", "other"]


def test_heatmap_mass_inside():
    from training.evaluation.heatmaps import heatmap_mass_inside, summarise_shares

    heat = np.zeros((4, 4))
    heat[:, :2] = 1.0
    heat[0, 3] = 2.0
    inside = np.zeros((4, 4), bool)
    inside[:, :2] = True
    assert heatmap_mass_inside(heat, inside) == pytest.approx(8 / 10)
    assert np.isnan(heatmap_mass_inside(np.zeros((4, 4)), inside))
    summary = summarise_shares([0.1, 0.5, 0.9, float("nan")])
    assert summary.measured == 3 and summary.median == 0.5 and summary.p10 == pytest.approx(0.18)
    assert summary.to_dict() == {"measured": 3, "median": 0.5, "p10": summary.p10}


def _external_folder(tmp_path, classes=("diabetic_retinopathy", "normal")):
    from tests.conftest import class_folders

    root = class_folders(tmp_path / "external", list(classes), per_class=5, size=40)
    rows = ["file,label,group,split"] + [
        f"{p.relative_to(root).as_posix()},{p.parent.name},{p.stem},test" for p in sorted(root.glob("*/*.png"))]
    (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


def _own_copy(small_bundle, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(small_bundle.parent, folder)
    return folder / small_bundle.name


def _fake_fov(monkeypatch):
    """Stands in for retina_desktop.imaging.fov: a centred circle, except on every third image."""
    import sys
    import types

    calls = []
    module = types.ModuleType("retina_desktop.imaging.fov")

    def retina_mask(rgb):
        calls.append(1)
        h, w = rgb.shape[:2]
        if len(calls) % 3 == 0:
            return None
        yy, xx = np.mgrid[:h, :w]
        return (xx + 0.5 - w / 2) ** 2 + (yy + 0.5 - h / 2) ** 2 <= (min(h, w) * 0.45) ** 2

    module.retina_mask = retina_mask
    monkeypatch.setitem(sys.modules, "retina_desktop.imaging.fov", module)


def test_evaluating_an_external_set_with_two_of_the_models_four_classes(small_bundle, tmp_path, monkeypatch, capsys):
    from retina_desktop.inference.model_files import read_sidecar
    from retina_desktop.services.classify import Classifier
    from training.classifier.model_card import render_card
    from training.datasets import load_dataset
    from training.evaluation.evaluate import evaluate_bundle
    from training.evaluation.predictions import load_split

    _fake_fov(monkeypatch)
    show_progress()  # the summary reaches stdout as `python -m training evaluate` shows it
    model = _own_copy(small_bundle, tmp_path)
    dataset = load_dataset(_external_folder(tmp_path))
    metrics = evaluate_bundle(model, dataset, n_bootstrap=30, heatmaps=6, store_external="mexico",
                              command="python -m training evaluate --data mexico", out_dir=tmp_path / "out")
    assert metrics["classes_present"] == ["diabetic_retinopathy", "normal"]
    # The figures against normal are those of the app's answers on these images.
    classifier = Classifier(model, backend="keras")
    images, labels = load_split(classifier, dataset, "test")
    assert sorted(set(labels.tolist())) == [1, 3]  # the model's indices, not the data set's
    said = classifier.predict_arrays(images).argmax(1)
    dr = metrics["versus_normal"]["diseases"]["diabetic_retinopathy"]
    assert dr["sensitivity"] == pytest.approx(np.mean(said[labels == 1] == 1), abs=1e-4)
    assert dr["specificity"] == pytest.approx(np.mean(said[labels == 3] == 3), abs=1e-4)
    heat = metrics["heatmap_in_fov"]
    assert heat["images"] == 6 and heat["skipped_no_fov"] == 2
    assert heat["measured"] + heat["skipped_empty_heatmap"] == 4 and heat["seconds_per_image"] > 0
    assert "per_source" not in metrics  # no source column, no --source
    printed = capsys.readouterr().out
    assert "classes present: diabetic_retinopathy, normal" in printed and "against normal" in printed
    assert "heatmap mass inside the field of view" in printed
    assert "versus_normal" in (tmp_path / "out" / "metrics.json").read_text()
    stored = read_sidecar(model.with_suffix(".json"))
    assert stored.metrics["external"]["mexico"]["command"] == "python -m training evaluate --data mexico"
    assert stored.temperature == 1.5  # the external set changes nothing but its own entry
    card = render_card(model, "teaching", [])
    assert "## External data" in card and "| mexico | diabetic_retinopathy vs normal | 5 / 5 |" in card


def test_a_data_set_class_the_model_does_not_know_is_refused(small_bundle, tmp_path):
    from retina_desktop.core.errors import UserError
    from training.datasets import load_dataset
    from training.evaluation.evaluate import evaluate_bundle

    dataset = load_dataset(_external_folder(tmp_path, ("normal", "unicorn")))
    with pytest.raises(UserError, match="unicorn"):
        evaluate_bundle(small_bundle, dataset, n_bootstrap=10, quiet=True)
