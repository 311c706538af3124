"""Image checks: each reason on a constructed image, and the pass rate on real test images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from retina_desktop.core.model_card import CheckThresholds
from retina_desktop.core.paths import default_model_path, modality_model_path, models_dir
from retina_desktop.core.settings import Settings
from retina_desktop.imaging.checks import judge, measure
from retina_desktop.imaging.decode import load_image
from retina_desktop.services.classify import Classifier
from tests.conftest import fundus_like

FUNDUS_OK = {"fundus": 0.98, "oct": 0.01, "other": 0.01}


DEFAULT_THRESHOLDS = CheckThresholds()


def _reasons(image: Image.Image, modality="fundus", probs=FUNDUS_OK, thresholds=DEFAULT_THRESHOLDS):
    return judge(measure(image), image.size, thresholds, modality, probs).reasons


def _textured(size=512, seed=0) -> Image.Image:
    """A fundus-like disc with vessel-like detail, sharp enough to pass."""
    rng = np.random.default_rng(seed)
    base = np.asarray(fundus_like(size, seed), dtype=np.float64)
    stripes = (np.sin(np.arange(size) / 3.0)[None, :] * 40)[..., None]
    disc = base.sum(-1, keepdims=True) > 60
    return Image.fromarray(
        np.clip(base + stripes * disc + rng.normal(0, 5, base.shape) * disc, 0, 255).astype(np.uint8)
    )


def test_a_good_image_passes():
    assert _reasons(_textured()) == []


def test_black_frame_is_too_dark():
    reasons = _reasons(Image.new("RGB", (400, 400), (8, 8, 8)))
    assert any(r.startswith("too dark to judge") for r in reasons)


def test_white_frame_is_overexposed():
    reasons = _reasons(Image.new("RGB", (400, 400), (255, 255, 255)))
    assert any(r.startswith("overexposed") for r in reasons)


def test_blur_is_out_of_focus():
    sharp = _textured()
    blurred = sharp.filter(ImageFilter.GaussianBlur(12))
    assert measure(blurred)["sharpness"] < measure(sharp)["sharpness"] / 20
    assert any(r.startswith("out of focus") for r in _reasons(blurred))


def test_sharpness_does_not_change_with_exposure():
    """A photograph taken a stop darker is as sharp: 15 of 100 darkened test photographs were
    refused as out of focus while sharpness scaled with the exposure."""
    photo = fundus_like(300, seed=2)
    pixels = np.asarray(photo, np.float32)
    darker = Image.fromarray(np.clip(pixels * 0.6, 0, 255).astype(np.uint8))
    blurred = photo.filter(ImageFilter.GaussianBlur(3))
    sharp, dark = measure(photo, "fov")["sharpness"], measure(darker, "fov")["sharpness"]
    assert dark == pytest.approx(sharp, rel=0.1)
    assert measure(blurred, "fov")["sharpness"] < sharp / 3


def test_tiny_image():
    reasons = _reasons(_textured(64))
    assert reasons[0] == "image too small to judge (64 x 64 pixels; needs at least 128 on the short side)"


def test_missing_field_of_view_only_matters_for_fundus():
    image = np.asarray(_textured()).copy()
    image[:, 130:] = 0  # three quarters of the frame dark
    cut = Image.fromarray(image)
    assert any(r.startswith("most of the field of view is missing") for r in _reasons(cut))
    assert not any("field of view" in r for r in _reasons(cut, "oct", {"fundus": 0, "oct": 1, "other": 0}))


def test_modality_reasons():
    photo = _textured()
    oct_probs = {"fundus": 0.02, "oct": 0.97, "other": 0.01}
    assert _reasons(photo, "fundus", oct_probs) == [
        "looks like an OCT B-scan (97%), but this model reads colour fundus photographs"]
    other = {"fundus": 0.1, "oct": 0.05, "other": 0.85}
    assert _reasons(photo, "fundus", other)[0].startswith("does not look like a colour fundus photograph")
    assert _reasons(photo, "unknown", other)[0].startswith("does not look like a retinal image")
    assert _reasons(photo, "unknown", oct_probs) == []


def test_a_refusal_never_says_it_looks_like_what_the_model_reads():
    # The check's best guess is the model's own modality, below the fitted minimum: one camera's
    # real photograph was told "looks like a colour fundus photograph (55%), but this model
    # reads colour fundus photographs".
    photo = _textured()
    unsure = {"fundus": 0.55, "oct": 0.05, "other": 0.40}
    verdict = judge(measure(photo), photo.size, CheckThresholds(min_modality_probability=0.555), "fundus", unsure)
    assert verdict.reasons[0] == (
        "not clearly a colour fundus photograph (the image check rates it 55% likely; needs 56%)"
    )
    assert verdict.looks_like == ""
    for probs in ({"fundus": 0.55, "oct": 0.05, "other": 0.4}, {"fundus": 0.3, "oct": 0.6, "other": 0.1},
                  {"fundus": 0.2, "oct": 0.1, "other": 0.7}):
        for reason in _reasons(photo, "fundus", probs):
            assert "looks like a colour fundus photograph" not in reason


def test_an_image_of_the_other_modality_says_which_it_looks_like():
    photo = _textured()
    oct_probs = {"fundus": 0.02, "oct": 0.97, "other": 0.01}
    assert judge(measure(photo), photo.size, CheckThresholds(), "fundus", oct_probs).looks_like == "oct"
    fundus_probs = {"fundus": 0.9, "oct": 0.05, "other": 0.05}
    assert judge(measure(photo), photo.size, CheckThresholds(), "oct", fundus_probs).looks_like == "fundus"
    other = {"fundus": 0.1, "oct": 0.05, "other": 0.85}
    assert judge(measure(photo), photo.size, CheckThresholds(), "fundus", other).looks_like == ""
    assert judge(measure(photo), photo.size, CheckThresholds(), "fundus", FUNDUS_OK).looks_like == ""


GREYSCALE = "greyscale image: the fundus model needs a colour photograph"


def test_a_greyscale_image_is_not_judged_by_a_fundus_model_but_is_by_an_oct_one():
    colour = _textured()
    grey = colour.convert("L").convert("RGB")  # a colour photograph's greyscale copy
    assert GREYSCALE in _reasons(grey)
    assert GREYSCALE not in _reasons(colour)
    oct_probs = {"fundus": 0.0, "oct": 1.0, "other": 0.0}
    assert not any("greyscale" in r for r in _reasons(grey, "oct", oct_probs))


def test_a_16_bit_greyscale_copy_of_a_fundus_photo_is_not_judged(small_bundle, tmp_path):
    path = tmp_path / "grey16.png"
    values = np.asarray(_textured().convert("L"), dtype=np.uint16) * 257
    Image.fromarray(values).save(path)
    prediction = Classifier(small_bundle).predict_file(path)
    assert not prediction.fit_to_judge and GREYSCALE in prediction.checks.reasons


def test_user_overrides_win_over_fitted_thresholds(small_bundle):
    classifier = Classifier(small_bundle, settings=Settings(check_overrides={"min_side": 10}))
    assert classifier.thresholds().min_side == 10


needs_models = pytest.mark.skipif(
    not (modality_model_path().exists() and default_model_path().exists()),
    reason="the shipped models are not built yet (models/keras_model.h5, models/modality/)",
)


@needs_models
def test_a_natural_photo_is_not_a_fundus():
    from sklearn.datasets import load_sample_image

    classifier = Classifier()
    photo = Image.fromarray(load_sample_image("china.jpg"))
    from retina_desktop.imaging.decode import LoadedImage

    result = classifier.check(LoadedImage(photo, "RGB", photo.size))
    assert not result.passed
    assert any("does not look like" in r for r in result.reasons)


@needs_models
@pytest.mark.data
def test_an_oct_given_to_the_fundus_model(shared_data):
    classifier = Classifier()
    scans = sorted((shared_data / "oct-dme" / "DME").glob("*.jpg"))[:10]
    flagged = [not classifier.check(load_image(p)).passed for p in scans]
    assert all(flagged)
    verdict = classifier.check(load_image(scans[0]))
    assert any(r.startswith("looks like an OCT B-scan") for r in verdict.reasons)
    # ... and names the shipped model that reads it, for the GUI's button and the CLI's line.
    if (models_dir() / "oct" / "keras_model.h5").exists():
        assert verdict.looks_like == "oct" and verdict.suggested_model == "models/oct/keras_model.h5"


@needs_models
@pytest.mark.data
def test_real_test_images_mostly_pass(shared_data):
    import csv

    rows = [r for r in csv.DictReader((shared_data / "fundus4" / "splits.csv").open()) if r["split"] == "test"]
    sample = rows[:: max(1, len(rows) // 120)]
    classifier = Classifier()
    flagged = sum(not classifier.check(load_image(shared_data / "fundus4" / r["file"])).passed for r in sample)
    assert flagged / len(sample) <= 0.05, f"{flagged} of {len(sample)} real test images flagged"

    oct_model = models_dir() / "oct" / "keras_model.h5"
    if oct_model.exists():
        oct_classifier = Classifier(oct_model)
        scans = [r for r in csv.DictReader((shared_data / "oct-dme" / "splits.csv").open()) if r["split"] == "test"]
        flagged = sum(not oct_classifier.check(load_image(shared_data / "oct-dme" / r["file"])).passed for r in scans)
        assert flagged / len(scans) <= 0.05, f"{flagged} of {len(scans)} real OCT test scans flagged"


@pytest.mark.parametrize(
    ("stats", "needle"),
    [
        ({"brightness": 34.58}, "mean brightness 34.58; needs 34.63 or more"),
        ({"brightness": 20.0}, "mean brightness 20; needs 35 or more"),
        ({"field_of_view": 0.4537}, "it fills 45.37% of the frame; needs 45.40%"),
        ({"saturated": 0.0461}, "4.61% of the image is saturated; at most 4.59%"),
        ({"sharpness": 13.25}, "sharpness 13.2; needs 13.3 or more"),
    ],
)
def test_a_refusal_never_prints_the_value_equal_to_its_limit(stats, needle):
    from retina_desktop.core.model_card import CheckThresholds
    from retina_desktop.imaging.checks import judge

    thresholds = CheckThresholds(min_brightness=34.63, max_saturated=0.0459, min_sharpness=13.253,
                                 min_field_of_view=0.454)
    measured = {"colour": 30.0, "brightness": 80.0, "saturated": 0.0, "sharpness": 50.0, "field_of_view": 0.7}
    result = judge(measured | stats, (512, 512), thresholds, "fundus", None)
    assert len(result.reasons) == 1 and needle in result.reasons[0], result.reasons
