"""One wording rule for answers (records.Answer), checked in every output: CLI text, JSON,
the batch CSV and the PDF report (the GUI's are in test_gui.py).

In each format the label must never contradict the numbers printed beside it: a two-class
model with an operating threshold names the threshold next to its positive answer, an unsure
answer is marked unsure, and an image that was not judged has no label.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.cli import main
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.core.prediction import CheckResult, Prediction
from retina_desktop.core.settings import Settings
from tests.conftest import CLASSES, fundus_like

OCT = ModelMetadata(
    classes=["DME", "NO_DME"], input=InputSpec(32, 32, "stretch", "none"), modality="oct", name="OCT model",
    version="1",
    decision={"positive_class": "DME", "threshold": 0.150849, "chosen_on": "val split, specificity >= 0.9"},
)
FUNDUS = ModelMetadata(classes=list(CLASSES), input=InputSpec(32, 32, "crop", "none"), modality="fundus",
                       name="fundus model", version="2")
OCT_LOOKING = CheckResult(
    False, ["looks like an OCT B-scan (98%), but this model reads colour fundus photographs"],
    looks_like="oct", suggested_model="models/oct/keras_model.h5",
)


class FakeBundle:
    def __init__(self, metadata: ModelMetadata) -> None:
        self.metadata = metadata
        self.path = Path(f"{metadata.modality}.h5")
        self.classes = metadata.classes
        self.model = None


def classifier_for(metadata: ModelMetadata, unsure_below: float = 0.6):
    """The real service's Classifier with its model replaced: predictions are made by
    `Classifier._prediction`, the code every output's numbers come from."""
    from retina_desktop.services.classify import Classifier

    classifier = Classifier("unused.h5", settings=Settings(unsure_below=unsure_below))
    classifier._bundle = FakeBundle(metadata)
    return classifier


def predict(metadata: ModelMetadata, probs, checks: CheckResult | None = None, file: str = "scan.png") -> Prediction:
    return classifier_for(metadata)._prediction(file, np.zeros((32, 32, 3), np.uint8), np.asarray(probs), checks)


# ---- the checker: does the text agree with the numbers in it? -----------------------------

THRESHOLD_TEXT = re.compile(r"p\(DME\) = ([\d.]+),? (?:is )?(above|at|below) the operating threshold ([\d.]+)")


def assert_consistent(text: str, label: str | None) -> None:
    """The printed numbers back the printed label: p against the threshold for DME/NO DME,
    the confidence for a top-class answer, and no label at all when not judged."""
    if label is None:
        assert text.startswith("not judged: ") or text.startswith("Not judged"), text
        assert not any(name in text.split(":")[1] for name in ("DME (", "glaucoma (", "normal (")), text
        return
    found = THRESHOLD_TEXT.search(text)
    if found:
        shown, relation, bound = float(found[1]), found[2], float(found[3])
        assert {"above": shown > bound, "at": shown == bound, "below": shown < bound}[relation], text
        assert (label == "DME") == (relation != "below"), text
        assert "DME" in text and "threshold" in text
    else:
        assert "model confidence" in text or "confidence" in text, text


# ---- the rule --------------------------------------------------------------------------------


def test_a_two_class_answer_above_the_threshold_names_it_even_below_one_half() -> None:
    answer = predict(OCT, [0.45, 0.55]).answer()
    assert answer.label == "DME" and answer.unsure  # p(DME) 0.45 < the unsure level 0.6
    assert answer.text() == (
        "unsure: DME (p(DME) = 0.45, above the operating threshold 0.15 chosen on val split, specificity >= 0.9)"
    )
    assert answer.headline() == "Unsure: DME (p(DME) 0.45, threshold 0.15)"
    assert "although NO DME has the longer bar" in answer.explanation()
    sure = predict(OCT, [0.92, 0.08]).answer()
    assert sure.text().startswith("DME (p(DME) = 0.92, above the operating threshold 0.15") and not sure.unsure
    below = predict(OCT, [0.10, 0.90]).answer()
    assert below.label == "NO_DME" and "below the operating threshold 0.15" in below.text()


@pytest.mark.parametrize("p", np.round(np.linspace(0.14, 0.16, 41), 5).tolist() + [0.150849, 0.1505, 0.1509])
def test_printed_numbers_never_contradict_the_label_near_the_threshold(p) -> None:
    prediction = predict(OCT, [p, 1 - p])
    answer = prediction.answer()
    for text in (answer.text(), answer.explanation()):
        assert_consistent(text, answer.label)


def test_top_class_answers_and_the_unsure_level() -> None:
    probs = [0.24, 0.25, 0.25, 0.26]
    answer = predict(FUNDUS, probs).answer()
    assert answer.text() == "unsure: normal (26% model confidence)" and answer.unsure
    assert answer.headline() == "Unsure: normal (26% confidence)"
    assert "below the unsure level 60%" in answer.warning()
    sure = predict(FUNDUS, [0.05, 0.05, 0.87, 0.03]).answer()
    assert sure.text() == "glaucoma (87% model confidence)" and not sure.unsure and sure.warning() == ""
    edge = predict(FUNDUS, [0.1, 0.104, 0.596, 0.2]).answer()
    assert edge.text() == "unsure: glaucoma (59.6% model confidence)"  # never "60%" below 60%


def test_a_not_judged_image_has_no_label_and_names_the_model_to_open() -> None:
    answer = predict(FUNDUS, [0.0, 0.0, 1.0, 0.0], OCT_LOOKING).answer()
    assert answer.label is None and answer.probability is None and answer.not_judged and not answer.unsure
    assert answer.text() == (
        "not judged: looks like an OCT B-scan (98%), but this model reads colour fundus photographs; "
        "the OCT model is models/oct/keras_model.h5"
    )
    assert answer.hint() == "This looks like an OCT B-scan: open models/oct/keras_model.h5"
    assert "glaucoma" not in answer.text() + answer.warning() + answer.headline()


# ---- each output ------------------------------------------------------------------------------

CASES = {  # file -> (metadata, probabilities, checks, label expected)
    "above.png": (OCT, [0.45, 0.55], None, "DME"),
    "unsure.png": (FUNDUS, [0.24, 0.25, 0.25, 0.26], None, "normal"),
    "notjudged.png": (FUNDUS, [0.0, 0.0, 1.0, 0.0], OCT_LOOKING, None),
}


class ScriptedClassifier:
    """Stands in for the service in the CLI: each file's prediction is made by the real
    `Classifier._prediction` from the probabilities in CASES."""

    def __init__(self, metadata: ModelMetadata) -> None:
        self.real = classifier_for(metadata)
        self.settings = self.real.settings

    def bundle(self):
        return self.real.bundle()

    def thresholds(self):
        from retina_desktop.core.model_card import CheckThresholds

        return CheckThresholds()

    def predict_file(self, path) -> Prediction:
        metadata, probs, checks, _ = CASES[Path(path).name]
        self.real._bundle = FakeBundle(metadata)
        return self.real._prediction(str(path), np.zeros((32, 32, 3), np.uint8), np.asarray(probs), checks)

    def predict_files(self, paths):
        for path in paths:
            yield Path(path), self.predict_file(path)


@pytest.fixture
def scripted(monkeypatch, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in CASES:
        fundus_like(64).save(folder / name)
    monkeypatch.setattr("retina_desktop.cli._classifier", lambda args: ScriptedClassifier(OCT))
    return folder


def test_cli_text_lines_agree_with_their_numbers(scripted, capsys) -> None:
    files = [str(scripted / name) for name in CASES]
    assert main(["predict", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, (*_, label) in zip(lines, CASES.values()):
        text = line.split(": ", 1)[1]
        assert_consistent(text, label)
    assert lines[0].endswith("above.png: unsure: DME (p(DME) = 0.45, above the operating threshold 0.15 "
                             "chosen on val split, specificity >= 0.9)")
    assert lines[1].endswith("unsure.png: unsure: normal (26% model confidence)")
    assert "notjudged.png: not judged: looks like an OCT B-scan" in lines[2]


def test_cli_json_marks_unsure_and_not_judged(scripted, capsys) -> None:
    files = [str(scripted / name) for name in CASES]
    assert main(["predict", *files, "--json"]) == 0
    above, unsure, not_judged = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert above["label"] == "DME" and above["operating_threshold"]["threshold"] == 0.150849
    assert above["probabilities"]["DME"] >= above["operating_threshold"]["threshold"]
    assert above["confidence"] == above["probabilities"]["DME"] and above["unsure"] is True
    assert_consistent(above["answer"], above["label"])
    assert unsure["label"] == "normal" and unsure["unsure"] is True and unsure["not_judged"] is False
    assert unsure["answer"].startswith("unsure: ")
    assert not_judged["label"] is None and not_judged["confidence"] is None and not_judged["not_judged"] is True
    assert not_judged["reasons"] and not_judged["suggested_model"] == "models/oct/keras_model.h5"
    assert not_judged["checks"]["passed"] is False


def test_batch_csv_marks_unsure_and_not_judged(scripted, tmp_path, capsys) -> None:
    out = tmp_path / "results.csv"
    assert main(["batch", str(scripted), "--out", str(out)]) == 0
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    above, unsure, not_judged = rows["above.png"], rows["unsure.png"], rows["notjudged.png"]
    assert above["label"] == "DME" and float(above["p_DME"]) >= 0.150849 and "operating threshold" in above["answer"]
    assert_consistent(above["answer"], above["label"])
    assert unsure["unsure"] == "true" and unsure["answer"].startswith("unsure: normal")
    assert not_judged["label"] == "" and not_judged["confidence"] == "" and not_judged["not_judged"] == "true"
    assert not_judged["answer"].startswith("not judged: ") and not_judged["check_reasons"]
    summary = capsys.readouterr().out
    assert "1 flagged by the image checks" in summary and "2 of them unsure" in summary


def test_info_shows_the_operating_threshold(monkeypatch, capsys) -> None:
    monkeypatch.setattr("retina_desktop.cli._classifier", lambda args: ScriptedClassifier(OCT))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "operating threshold: 0.150849 for DME, chosen on val split, specificity >= 0.9" in out
    assert "model version 1" in out and "unsure" in out


def _figure_texts(fig) -> str:
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    texts += [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center")]
    return "\n".join(texts)


def test_pdf_wording_threshold_marker_grey_bars_and_the_chosen_heatmap() -> None:
    from matplotlib.colors import to_hex

    from retina_desktop.services.report import GREY_COLOUR, build_report_figure

    image = np.asarray(fundus_like(64))
    heat = np.ones((32, 32), np.float32)
    above = build_report_figure(predict(OCT, [0.45, 0.55]), image=image, heatmap=heat, metadata=OCT,
                                heatmap_class="NO_DME")
    text = _figure_texts(above)
    assert "Unsure: DME (p(DME) 0.45, threshold 0.15)" in text
    assert "is above the operating threshold 0.15" in text.replace("\n", " ")
    assert "Heatmap (Grad-CAM) for NO DME" in text  # the class chosen, not the reported one
    bars = next(ax for ax in above.axes if ax.patches)
    assert [line.get_xdata()[0] for line in bars.lines] == [pytest.approx(0.150849)]  # the marker
    not_judged = build_report_figure(predict(FUNDUS, [0.0, 0.0, 1.0, 0.0], OCT_LOOKING), metadata=FUNDUS)
    text = _figure_texts(not_judged)
    assert "Not judged" in text and "open models/oct/keras_model.h5" in text.replace("\n", " ")
    bars = next(ax for ax in not_judged.axes if ax.patches)
    assert {to_hex(p.get_facecolor()) for p in bars.patches} == {GREY_COLOUR}
    unsure = build_report_figure(predict(FUNDUS, [0.24, 0.25, 0.25, 0.26]), metadata=FUNDUS)
    assert "Unsure: normal (26% confidence)" in _figure_texts(unsure)


# ---- a many-class model with a referral threshold (the fundus screening model) -----------------

REFERRAL = ModelMetadata(
    classes=list(CLASSES), input=InputSpec(32, 32, "crop", "none"), modality="fundus", name="screening model",
    version="4", decision={"positive_class": CLASSES[1], "threshold": 0.22,
                           "chosen_on": "val split, referable DR sensitivity >= 0.9", "rule": "referral"},
)


def test_a_referral_answer_says_refer_and_names_the_threshold_in_every_wording() -> None:
    dr = CLASSES[1].replace("_", " ")
    refer = predict(REFERRAL, [0.05, 0.31, 0.04, 0.60]).answer()
    assert refer.label == CLASSES[1] and refer.referred is True
    assert refer.text() == (f"unsure: {dr}: refer (p({dr}) = 0.31, above the referral threshold 0.22 chosen on "
                            "val split, referable DR sensitivity >= 0.9)")
    assert refer.headline() == f"Unsure: {dr}: refer (p = 0.31, threshold 0.22)"
    assert refer.label_text() == f"unsure: {dr}: refer"
    assert "although normal has the longer bar" in refer.explanation()
    assert refer.json_fields()["refer"] is True and refer.json_fields()["operating_threshold"]["rule"] == "referral"
    kept = predict(REFERRAL, [0.05, 0.10, 0.05, 0.80]).answer()
    assert kept.label == "normal" and kept.referred is False and not kept.unsure
    assert kept.text() == f"normal (80% model confidence; p({dr}) = 0.10, below the referral threshold 0.22)"
    assert kept.headline() == "Model output: normal (80% confidence)" and kept.label_text() == "normal"
    assert kept.explanation().startswith(f"Not referred for {dr}: p({dr}) = 0.10 is below the referral threshold")
    assert kept.json_fields()["refer"] is False
    # Near the threshold the printed numbers keep their order.
    for p in (0.2195, 0.22, 0.2205):
        answer = predict(REFERRAL, [0.1, p, 0.0, 0.9 - p]).answer()
        assert (": refer" in answer.text()) == (p >= 0.22) == bool(answer.referred)
        assert ("above" in answer.text() or "at the" in answer.text()) == (p >= 0.22)
    not_judged = predict(REFERRAL, [0.0, 0.9, 0.0, 0.1], OCT_LOOKING).answer()
    assert not_judged.referred is None and "refer" not in not_judged.text().replace("referral", "")


def test_referral_answers_in_the_cli_json_csv_info_and_report(monkeypatch, tmp_path, capsys) -> None:
    from retina_desktop.services.report import build_report_figure

    folder = tmp_path / "eyes"
    folder.mkdir()
    cases = {"refer.png": (REFERRAL, [0.05, 0.31, 0.04, 0.60], None, CLASSES[1]),
             "keep.png": (REFERRAL, [0.05, 0.10, 0.05, 0.80], None, "normal")}
    for name in cases:
        fundus_like(64).save(folder / name)
    monkeypatch.setattr("tests.test_answers.CASES", cases)
    monkeypatch.setattr("retina_desktop.cli._classifier", lambda args: ScriptedClassifier(REFERRAL))
    assert main(["predict", str(folder / "refer.png"), str(folder / "keep.png"), "--json"]) == 0
    refer, keep = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert refer["refer"] is True and keep["refer"] is False and ": refer (" in refer["answer"]
    out = tmp_path / "results.csv"
    assert main(["batch", str(folder), "--out", str(out)]) == 0
    rows = {Path(r["file"]).name: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert "refer (" in rows["refer.png"]["answer"] and "below the referral threshold" in rows["keep.png"]["answer"]
    assert "reports diabetic retinopathy: refer when" in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "referral threshold: 0.22 for diabetic_retinopathy" in capsys.readouterr().out
    figure = build_report_figure(predict(REFERRAL, [0.05, 0.31, 0.04, 0.60]), metadata=REFERRAL)
    text = _figure_texts(figure)
    assert "referral threshold 0.22" in text and ": refer (p = 0.31, threshold 0.22)" in text
