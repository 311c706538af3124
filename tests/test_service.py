"""The service: predict_class's record, lazy single loading, calibration, threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from retina_desktop.core.errors import ImageError
from retina_desktop.core.model_card import InputSpec
from retina_desktop.imaging.preprocessing import fit_image, scale_pixels
from retina_desktop.inference.calibration import apply_temperature
from retina_desktop.services import classify as service
from retina_desktop.services.classify import Classifier
from tests.conftest import CLASSES, fundus_like


def test_predict_file_returns_the_full_record(small_bundle, image_file):
    classifier = Classifier(small_bundle)
    assert not classifier.loaded  # nothing loads until it is needed
    prediction = classifier.predict_file(image_file)
    assert classifier.loaded
    assert list(prediction.probabilities) == CLASSES
    assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
    assert prediction.confidence == pytest.approx(max(prediction.probabilities.values()))
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert prediction.processed_image.shape == (48, 48, 3)
    assert prediction.processed_image.dtype == np.uint8
    assert prediction.model_name == "test model"


def test_probabilities_match_the_keras_model_with_temperature(small_bundle, image_file):
    classifier = Classifier(small_bundle)
    bundle = classifier.bundle()
    from retina_desktop.imaging.decode import load_image

    fitted = fit_image(load_image(image_file).rgb, bundle.metadata.input)
    raw = bundle.model.predict(scale_pixels(fitted[None], "none"), verbose=0)
    expected = apply_temperature(raw.astype(np.float64), 1.5)[0]
    got = classifier.predict_file(image_file)
    assert np.allclose(list(got.probabilities.values()), expected, atol=1e-5)


def test_model_is_loaded_once(small_bundle, monkeypatch):
    calls = []
    real = service.open_classifier

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "open_classifier", counting)
    classifier = Classifier(small_bundle)
    images = np.zeros((3, 48, 48, 3), np.uint8)
    classifier.predict_arrays(images)
    classifier.predict_arrays(images)
    assert len(calls) == 1


def test_predicting_from_worker_threads(small_bundle, image_file):
    classifier = Classifier(small_bundle)
    results, errors = [], []

    def work():
        try:
            results.append(classifier.predict_file(image_file).probabilities)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, name=f"worker-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == pytest.approx(results[0]) for r in results)
    assert classifier.model_threads == {f"worker-{i}" for i in range(4)}


def test_bad_image_raises_image_error(small_bundle, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(ImageError, match="bad.jpg"):
        Classifier(small_bundle).predict_file(bad)


def test_predict_files_answers_as_predict_file_does_in_order_errors_included(small_bundle, tmp_path):
    from retina_desktop.core.errors import UserError
    from retina_desktop.core.paths import modality_model_path

    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        if i == 3:
            path.write_bytes(b"not an image")
        else:
            # Different sizes and a dark one, so the checks' verdicts differ between files.
            fundus_like(120 + 20 * i, seed=i).point(lambda v, i=i: v // (8 if i == 5 else 1)).save(path)
        paths.append(path)
    from retina_desktop.core.settings import Settings

    # Checks on whatever an earlier test saved as the user's settings.
    classifier = Classifier(small_bundle, settings=Settings(checks_enabled=True))
    # Batches of 2 with a reader pool: the order must survive batch edges and parallel reads.
    outcomes = list(classifier.predict_files(paths, batch_size=2, readers=3))
    assert [path for path, _ in outcomes] == paths
    for path, outcome in outcomes:
        if path.name == "3.png":
            assert isinstance(outcome, UserError) and "3.png" in str(outcome)
            continue
        single = classifier.predict_file(path)
        assert outcome.label == single.label
        assert list(outcome.probabilities.values()) == pytest.approx(list(single.probabilities.values()), abs=1e-6)
        assert (outcome.checks is None) == (single.checks is None)
        if single.checks is not None:
            assert (outcome.checks.passed, outcome.checks.reasons) == (single.checks.passed, single.checks.reasons)
    verdicts = {o.checks.passed for _, o in outcomes if not isinstance(o, UserError) and o.checks is not None}
    if modality_model_path().exists():
        assert verdicts == {True, False}, "the files were meant to get different verdicts"
    # Models ran on the calling thread only (the main and the modality model); readers only read.
    here = threading.current_thread().name
    assert classifier.model_threads == {here}
    if classifier.modality_classifier() is not None:
        assert classifier.modality_classifier().model_threads == {here}


def _image_files(folder, n):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        fundus_like(96, seed=i).save(folder / f"{i:02d}.png")
    return sorted(folder.iterdir())


def _counting_reads(monkeypatch):
    reads = []
    real = service.load_image

    def counting(path):
        reads.append(path)
        return real(path)

    monkeypatch.setattr(service, "load_image", counting)
    return reads


def test_closing_predict_files_early_stops_its_readers(small_bundle, tmp_path, monkeypatch):
    paths = _image_files(tmp_path / "images", 40)
    reads = _counting_reads(monkeypatch)
    before = set(threading.enumerate())
    outcomes = Classifier(small_bundle).predict_files(paths, batch_size=4)
    first_path, first = next(outcomes)
    assert first_path == paths[0] and first.label in CLASSES
    outcomes.close()
    # At most the two batches in flight were read, not the 40 files, and no reader lives on.
    assert len(reads) <= 8
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(threading.enumerate()) - before


def test_predict_files_keeps_the_settings_it_started_with(small_bundle, tmp_path):
    from retina_desktop.core.settings import Settings

    paths = _image_files(tmp_path / "images", 6)
    classifier = Classifier(small_bundle, settings=Settings(checks_enabled=False))
    outcomes = classifier.predict_files(paths, batch_size=2)
    got = [next(outcomes)]
    classifier.settings = Settings(checks_enabled=True)  # the GUI's Settings dialog, mid-run
    got += list(outcomes)
    assert [path for path, _ in got] == paths
    assert all(prediction.checks is None for _, prediction in got)
    assert classifier.predict_file(paths[0]).checks is not None  # the change applies from now on


def test_a_cancelled_batch_reads_no_more_files(small_bundle, tmp_path, monkeypatch):
    from retina_desktop.services.batch import classify_folder

    folder = tmp_path / "images"
    _image_files(folder, 12)
    classifier = Classifier(small_bundle)
    reads = _counting_reads(monkeypatch)
    cancel = threading.Event()
    cancel.set()
    assert list(classify_folder(folder, classifier.predict_files, cancel)) == []
    assert reads == []
    cancel.clear()
    rows = []
    for row in classify_folder(folder, classifier.predict_files, cancel):
        rows.append(row)
        cancel.set()  # the user presses Cancel after the first row
    assert len(rows) == 1 and rows[0].ok


def test_predict_class_uses_the_default_model(small_bundle, image_file, monkeypatch):
    monkeypatch.setattr(service, "_default", Classifier(small_bundle))
    assert service.predict_class(image_file).label in CLASSES


@pytest.mark.parametrize("fit", ["crop", "pad", "stretch"])
def test_fit_modes_give_the_model_size(fit):
    image = fundus_like(64).resize((120, 60))
    assert fit_image(image, InputSpec(32, 40, fit, "none")).shape == (32, 40, 3)


def test_scalings():
    pixels = np.array([0, 255], dtype=np.uint8)
    assert scale_pixels(pixels, "tm").tolist() == [-1.0, 1.0]
    assert scale_pixels(pixels, "unit").tolist() == [0.0, 1.0]
    assert scale_pixels(pixels, "none").tolist() == [0.0, 255.0]


def test_temperature_keeps_ranking_and_softens():
    probs = np.array([[0.9, 0.08, 0.02]])
    soft = apply_temperature(probs, 2.0)
    assert soft.argmax() == 0 and soft[0, 0] < 0.9 and soft.sum() == pytest.approx(1)
    assert np.allclose(apply_temperature(probs, 1.0), probs)


def test_a_two_class_model_reports_by_its_operating_threshold():
    from retina_desktop.core.model_card import ModelMetadata

    plain = ModelMetadata(classes=["DME", "NO_DME"])
    screening = ModelMetadata(classes=["DME", "NO_DME"],
                              decision={"positive_class": "DME", "threshold": 0.15, "chosen_on": "val"})
    assert plain.label_for([0.2, 0.8]) == 1  # the larger probability
    assert screening.label_for([0.2, 0.8]) == 0  # DME reaches its threshold
    assert screening.label_for([0.1, 0.9]) == 1
    four = ModelMetadata(classes=list("abcd"), decision={"positive_class": "a", "threshold": 0.1})
    # A many-class model's threshold is a referral rule: its class is reported once p reaches it.
    assert four.label_for([0.2, 0.5, 0.2, 0.1]) == 0 and four.label_for([0.05, 0.5, 0.35, 0.1]) == 1


def test_predict_files_gives_a_name_too_long_its_own_error_and_runs_the_rest(small_bundle, tmp_path):
    good = tmp_path / "good.png"
    fundus_like(200).save(good)
    too_long = tmp_path / ("b" * 300 + ".png")
    outcomes = list(Classifier(small_bundle).predict_files([good, too_long, good]))
    assert [path for path, _ in outcomes] == [good, too_long, good]
    assert isinstance(outcomes[1][1], ImageError) and "File name too long" in str(outcomes[1][1])
    assert not isinstance(outcomes[0][1], ImageError) and not isinstance(outcomes[2][1], ImageError)


def test_a_model_answering_nan_is_an_error_for_that_file_not_an_answer(small_bundle, tmp_path, monkeypatch):
    from retina_desktop.core.errors import ModelError, UserError

    classifier = Classifier(small_bundle)
    runtime = classifier.bundle().runtime
    real = runtime.predict_with_features

    def damaged(batch):  # what a tampered model file gave: NaN for every class of one image
        probs, features = real(batch)
        probs = np.array(probs, dtype=np.float64)
        probs[0] = np.nan
        return probs, features

    monkeypatch.setattr(runtime, "predict_with_features", damaged)
    monkeypatch.setattr(runtime, "predict", lambda batch: damaged(batch)[0])
    files = []
    for i in range(2):
        files.append(tmp_path / f"{i}.png")
        fundus_like(200, seed=i).save(files[-1])
    with pytest.raises(ModelError) as caught:
        classifier.predict_file(files[0])
    assert str(files[0]) in str(caught.value) and "NaN" in str(caught.value) and "\n" not in str(caught.value)
    outcomes = list(classifier.predict_files(files))
    assert isinstance(outcomes[0][1], UserError) and not isinstance(outcomes[1][1], UserError)


def test_a_generator_opened_as_the_classifier_is_refused_naming_its_kind(tiny_generator):
    from retina_desktop.core.errors import ModelError

    with pytest.raises(ModelError, match="is a class-conditional GAN, not a classifier: open it in the Augment tab"):
        Classifier(tiny_generator).bundle()
