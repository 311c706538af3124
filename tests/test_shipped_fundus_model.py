"""The shipped default fundus model: what it claims in its sidecar, and that the app reloads it
into the same answers that `evaluate` measured (compiled and Keras paths alike)."""

from __future__ import annotations

import numpy as np
import pytest

from retina_desktop.core.paths import models_dir
from retina_desktop.core.settings import Settings
from retina_desktop.inference.model_files import read_sidecar
from retina_desktop.services.classify import Classifier

MODEL = models_dir() / "keras_model.h5"

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no shipped fundus model in models/")


def test_the_sidecar_says_how_it_was_made_and_how_it_generalises():
    metadata = read_sidecar(MODEL.with_suffix(".json"))
    config = metadata.provenance["config"]
    assert config["architecture"].startswith("efficientnet-lite") and config["weights"] == "imagenet"
    assert metadata.input.fit == "fov" and metadata.modality == "fundus"
    assert "fundus4" in metadata.provenance["data"]
    # A screening answer is a referral decision at a threshold chosen on validation.
    point = metadata.operating_point()
    assert point is not None and point.referral and point.positive_class == "diabetic_retinopathy"
    assert point.chosen_on.startswith("val split")
    assert metadata.metrics["referable_dr"]["referred"] is not None and "healthy_called" in metadata.metrics
    externals = metadata.metrics["external"]
    assert externals.keys() >= {"fundus-external", "messidor2"}
    assert externals["fundus-external"]["classes_present"] == ["diabetic_retinopathy", "normal"]
    assert "versus_normal" in externals["fundus-external"]
    assert externals["fundus-external"]["command"].startswith("python")
    assert externals["messidor2"]["referable_dr"]["n_referable"] > 0
    assert metadata.metrics["per_source"].keys() >= {"odir", "eyepacs", "small", "srahim"}
    assert 0 < metadata.metrics["heatmap_in_fov"]["median"] <= 1
    assert MODEL.stat().st_size < 30e6


def test_the_app_reloads_it_into_the_same_answers_on_another_camera(shared_data):
    """Compiled (what the clinic runs) and Keras (what training saved) agree on raw camera
    photographs that the model never saw, standardised by the same field-of-view function."""
    files = sorted((shared_data / "fundus-external").rglob("*.jpg"))[::40][:6]
    checks_off = Settings(checks_enabled=False)
    litert = Classifier(MODEL, backend="litert", settings=checks_off)
    keras = Classifier(MODEL, backend="keras", settings=checks_off)
    for file in files:
        a, b = litert.predict_file(file), keras.predict_file(file)
        assert a.label == b.label, file
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
        spec = litert.bundle().metadata.input
        assert a.processed_image.shape == (spec.height, spec.width, 3)
        assert a.operating_point is not None and a.operating_point.referral
