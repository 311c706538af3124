"""Screening figures and the referral threshold (training/evaluation/referral.py), the grade
column and grades.csv (training/datasets.py), and the referral rule of a many-class model."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import ModelMetadata
from tests.conftest import fundus_like
from training.datasets import load_dataset
from training.evaluation.referral import referral_threshold, screening_by_source, screening_figures

CLASSES4 = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def test_the_referral_threshold_refers_the_wanted_share_of_referable_eyes_and_no_fewer():
    p_dr = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.5, 0.1])
    referable = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
    # 9 of 10 referable eyes at or above the threshold: the 9th highest referable score.
    assert referral_threshold(p_dr, referable, 0.9) == 0.1
    assert referral_threshold(p_dr, referable, 0.5) == 0.5
    for target in (0.85, 0.9, 0.95, 1.0):
        t = referral_threshold(p_dr, referable, target)
        assert np.mean(p_dr[referable] >= t) >= target
    with pytest.raises(ValueError, match="no referable eyes"):
        referral_threshold(p_dr, np.zeros(12, bool))


def _screening_case():
    """DR and normal eyes with grades, a glaucoma eye (ungraded) and an unstaged DR eye."""
    labels = np.array([1, 1, 1, 1, 3, 3, 3, 3, 2, 1])
    grades = np.array([3, 2, 1, 2, 0, 0, 0, 0, -1, -1])
    p_dr = np.array([0.9, 0.6, 0.5, 0.2, 0.4, 0.1, 0.1, 0.05, 0.3, 0.95])
    probs = np.zeros((10, 4))
    probs[:, 1] = p_dr
    probs[:, 3] = 1 - p_dr
    reported = np.where(p_dr >= 0.35, 1, 3)
    reported[7] = 2  # a healthy eye called glaucoma
    return probs, labels, grades, reported


def test_referable_dr_figures_leave_out_ungraded_eyes_and_count_healthy_calls():
    probs, labels, grades, reported = _screening_case()
    figures = screening_figures(probs, labels, reported, grades, CLASSES4, n_bootstrap=50)
    ref = figures["referable_dr"]
    # Graded DR/normal eyes: referable 0.9, 0.6, 0.2 against 0.5 (grade 1) and 0.4, 0.1, 0.1, 0.05.
    assert (ref["n_referable"], ref["n_not_referable"], ref["n_grade0"]) == (3, 5, 4)
    assert ref["auc"] == pytest.approx(13 / 15, abs=1e-4)  # 0.2 beats only three negatives
    assert ref["referred"] == pytest.approx(2 / 3, abs=1e-4)  # 0.9 and 0.6 reach 0.35
    assert ref["grade0_not_referred"] == 0.75  # the 0.4 healthy eye is referred
    assert ref["grade01_not_referred"] == 0.6  # ... and the grade-1 eye at 0.5
    healthy = figures["healthy_called"]
    assert healthy["n"] == 4 and healthy["glaucoma"] == 0.25 and healthy["diabetic_retinopathy"] == 0.25
    assert healthy["normal"] == 0.5
    by_source = screening_by_source(probs, labels, reported, grades, np.array(["a"] * 5 + ["b"] * 5), CLASSES4,
                                    n_bootstrap=20)
    assert set(by_source) == {"a", "b"} and by_source["b"]["healthy_called"]["n"] == 3


def test_without_grades_there_is_no_referable_figure():
    probs, labels, _, reported = _screening_case()
    figures = screening_figures(probs, labels, reported, np.full(10, -1), CLASSES4, n_bootstrap=10)
    assert "referable_dr" not in figures and "healthy_called" in figures


def _graded_folder(tmp_path, with_grades_csv: bool):
    root = tmp_path / "data"
    rows = ["file,label,group,split,source" + ("" if with_grades_csv else ",grade")]
    grades = ["file,grade,group"]
    for label, grade_list in (("diabetic_retinopathy", [1, 2, 4]), ("normal", [0, 0, 0])):
        (root / label).mkdir(parents=True)
        for i, grade in enumerate(grade_list):
            name = f"{label}/{i}_x.png"
            fundus_like(16, seed=i).save(root / name)
            rows.append(f"{name},{label},g{label}{i},test,cam" + ("" if with_grades_csv else f",{grade}"))
            grades.append(f"{name},{grade},exam-{i}")
    if with_grades_csv:
        (root / "grades.csv").write_text("\n".join(grades) + "\n")
    else:
        (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("with_grades_csv", [False, True])
def test_grades_come_from_the_grade_column_or_a_grades_csv(tmp_path, with_grades_csv):
    dataset = load_dataset(_graded_folder(tmp_path, with_grades_csv))
    assert all(s.grade is not None for s in dataset.samples)
    grades = {s.file: s.grade for s in dataset.samples}
    assert grades["diabetic_retinopathy/1_x.png"] == 2 and grades["normal/0_x.png"] == 0
    assert len(dataset.subset("all")) == 6
    if with_grades_csv:  # the grades.csv's group keeps one exam's eyes together
        groups = {s.file: s.group for s in dataset.samples}
        assert groups["diabetic_retinopathy/1_x.png"] == groups["normal/1_x.png"] == "exam-1"


@pytest.mark.parametrize("cell", ["5", "x", "1.5", "-1"])
def test_a_grade_that_is_not_an_icdr_grade_is_refused_with_its_line(tmp_path, cell):
    root = _graded_folder(tmp_path, False)
    text = (root / "splits.csv").read_text().splitlines()
    text[2] = text[2].rsplit(",", 1)[0] + f",{cell}"
    (root / "splits.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(UserError, match=r"line 3: grade must be a whole ICDR grade"):
        load_dataset(root)


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd"])
def test_a_splits_csv_naming_a_file_outside_the_data_folder_is_refused(tmp_path, name):
    root = _graded_folder(tmp_path, False)
    fundus_like(16).save(tmp_path / "outside.png")
    text = (root / "splits.csv").read_text().splitlines()
    text[1] = f"{name}," + text[1].split(",", 1)[1]
    (root / "splits.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(UserError, match="is outside the data folder"):
        load_dataset(root)


REFERRAL = ModelMetadata(classes=CLASSES4, modality="fundus", decision={
    "positive_class": "diabetic_retinopathy", "threshold": 0.22,
    "chosen_on": "val split, referable DR sensitivity >= 0.9", "rule": "referral"})


def test_a_referral_threshold_reports_dr_even_when_another_class_is_higher():
    assert REFERRAL.label_for([0.05, 0.31, 0.04, 0.60]) == 1
    # Below it, the most probable other class, even when DR is the top class.
    assert REFERRAL.label_for([0.10, 0.20, 0.05, 0.65]) == 3
    below_but_top = ModelMetadata(classes=CLASSES4, decision={**REFERRAL.decision, "threshold": 0.5})
    assert below_but_top.label_for([0.3, 0.4, 0.2, 0.1]) == 0
    assert "even when another class is more probable" in REFERRAL.decision_text()
    # A many-class model's decision is a referral rule even when the sidecar does not say so.
    assert ModelMetadata(classes=CLASSES4, decision={"positive_class": "glaucoma", "threshold": 0.3}
                         ).operating_point().referral
    with pytest.raises(ValueError, match='"decision.rule"'):
        ModelMetadata.from_dict({"classes": CLASSES4, "decision": {**REFERRAL.decision, "rule": "vote"}})
