"""Tests for retina_desktop.services.report: the wording of results and the exported report."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.core.prediction import Prediction
from retina_desktop.services.report import (
    NOTICE,
    build_report_figure,
    export_report,
    is_unsure,
    metrics_text,
    result_text,
    unsure_text,
)
from tests.conftest import CLASSES, fundus_like


def prediction(confidence: float = 0.87) -> Prediction:
    rest = (1 - confidence) / 3
    probs = {c: (confidence if c == "glaucoma" else rest) for c in CLASSES}
    image = np.asarray(fundus_like(48, seed=1))
    return Prediction("/scans/eye 1.png", "glaucoma", confidence, probs, image, "fundus model", "m.h5")


METADATA = ModelMetadata(
    classes=CLASSES, input=InputSpec(48, 48, "crop", "none"), modality="fundus", name="fundus model",
    version="1.2", provenance={"trained_at": "2025-01-02"},
    metrics={"accuracy": 0.9, "balanced_accuracy": 0.88, "macro_auc": 0.97, "n": 400},
)
WHEN = dt.datetime(2025, 3, 4, 10, 30)


def test_wording_is_model_output_with_confidence() -> None:
    assert result_text(prediction()) == "Model output: glaucoma (87% confidence)"
    p = prediction()
    p2 = Prediction(p.file, "diabetic_retinopathy", 0.55, p.probabilities, p.processed_image)
    assert result_text(p2) == "Unsure: diabetic retinopathy (55% confidence)"
    assert is_unsure(p2) and "unsure" in unsure_text(p2) and "55%" in unsure_text(p2)
    assert not is_unsure(p) and unsure_text(p) == ""
    assert "balanced accuracy 88.0%" in metrics_text(METADATA) and "400 images" in metrics_text(METADATA)
    assert metrics_text(None) == "No test metrics recorded for this model."


def test_figure_holds_the_result_model_date_and_notice() -> None:
    heat = np.random.default_rng(0).uniform(0, 1, (48, 48)).astype(np.float32)
    fig = build_report_figure(prediction(), image=np.asarray(fundus_like(120)), heatmap=heat,
                              metadata=METADATA, created=WHEN)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title(loc) for ax in fig.axes
                                                                   for loc in ("left", "center")]
    joined = "\n".join(texts)
    assert NOTICE in joined
    assert "Model output: glaucoma (87% confidence)" in joined
    assert "fundus model, model version 1.2" in joined and "2025-03-04 10:30" in joined
    assert "eye 1.png" in joined and "Heatmap" in joined
    assert len(fig.axes[3].patches) == len(CLASSES)  # one bar per class


def test_a_long_model_name_stays_on_the_page() -> None:
    """The shipped fundus model's name, version and modality ran past the right edge of the PDF."""
    import dataclasses

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    long = "fundus screening model (frozen EfficientNet-Lite0 features, 224 px) trained by a very careful clinic"
    named = dataclasses.replace(prediction(), model_name=long)
    fig = build_report_figure(named, metadata=METADATA, created=WHEN)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width = fig.bbox.width
    for ax in fig.axes:
        for text in ax.texts:
            assert text.get_window_extent(renderer).x1 <= width, text.get_text()
    header = "\n".join(t.get_text() for t in fig.axes[0].texts)
    assert "careful clinic, model version 1.2, modality fundus" in " ".join(header.split())


@pytest.mark.parametrize("suffix,magic", [(".pdf", b"%PDF"), (".png", b"\x89PNG")])
def test_export_writes_the_file_atomically(tmp_path, suffix, magic) -> None:
    target = tmp_path / "out" / f"report{suffix}"
    heat = np.ones((48, 48), np.float32)
    written = export_report(target, prediction(0.4), heatmap=heat, metadata=METADATA, created=WHEN)
    assert written == target and target.read_bytes().startswith(magic)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary left behind


def test_export_without_heatmap_or_metadata(tmp_path) -> None:
    target = tmp_path / "plain.png"
    export_report(target, prediction())
    assert target.stat().st_size > 10_000


def test_export_refuses_other_formats_and_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    with pytest.raises(UserError, match=r"\.pdf or \.png"):
        export_report(tmp_path / "report.docx", prediction())
    target = tmp_path / "report.pdf"
    target.write_bytes(b"old")

    def failing_save(self, name, **kwargs):
        with open(name, "wb") as handle:
            handle.write(b"half a pdf")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", failing_save)
    with pytest.raises(UserError, match="No space left"):
        export_report(target, prediction(), metadata=METADATA)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]
