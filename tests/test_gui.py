"""Tests for retina_desktop.gui: a real Tk window on a virtual display (Xvfb), driven with
`invoke()` and patched dialogs. A fake classifier stands in where the model is not the point;
the others use the small real bundle, and every test that runs model code checks that the Tk
thread ("MainThread") never did.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.errors import ImageError, ModelError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.core.prediction import Prediction
from retina_desktop.core.settings import Settings
from retina_desktop.imaging.decode import load_image
from retina_desktop.imaging.preprocessing import fit_image
from tests.conftest import CLASSES, SHARED_DATA, fundus_like
from tests.gui_support import FakeClassifier, pump

tk = pytest.importorskip("tkinter")


def picture(tmp_path: Path, name: str = "eye.png", seed: int = 0) -> Path:
    path = tmp_path / name
    fundus_like(160, seed=seed).save(path)
    return path


def test_window_shows_before_the_model_loads_and_queues_browse(make_app, tmp_path, monkeypatch) -> None:
    slow = FakeClassifier(slow=True)
    app = make_app(slow)
    # The window is up while the model is still loading (it loads only once released below);
    # how fast it appears is measured by benchmarks, not asserted here.
    pump(app.root, lambda: app.root.winfo_viewable(), timeout=5)
    assert not slow.loaded
    pump(app.root, lambda: True, timeout=1)
    assert app.model_var.get() == "Loading model…"
    assert not slow.loaded and not app.model_ready
    # Browse while loading: the request waits for the model.
    image = picture(tmp_path)
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(image))
    app.analyse.browse_button.invoke()
    pump(app.root, lambda: True, timeout=0.2)
    assert app.analyse.result_var.get() == "Waiting for the model to load…"
    slow.release.set()
    pump(app.root, lambda: app.analyse.prediction is not None)
    assert app.model_ready and "fake model" in app.model_var.get() and "fundus" in app.model_var.get()
    assert app.analyse.result_var.get() == "Model output: glaucoma (70% confidence)"
    assert "MainThread" not in slow.model_threads


def test_browse_shows_image_result_chart_and_heatmap(make_app, real_classifier, tmp_path, monkeypatch) -> None:
    app = make_app(real_classifier)
    image = picture(tmp_path)
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(image))
    pump(app.root, lambda: app.model_ready)
    app.analyse.browse_button.invoke()
    pump(app.root, lambda: app.analyse.prediction is not None and app.analyse.heatmaps)
    pump(app.root, lambda: app.analyse.chart.canvas is not None)
    analyse = app.analyse
    # An untrained model: its answer is "Unsure: …" (below the unsure level), worded alike.
    assert analyse.result_var.get().startswith(("Model output: ", "Unsure: "))
    assert "% confidence)" in analyse.result_var.get()
    assert set(analyse.chart.values) == set(CLASSES)
    assert len(analyse.chart.figure.axes[0].patches) == len(CLASSES)
    plain = np.asarray(analyse.panel.displayed).copy()
    assert plain.shape[0] > 100  # scaled up to fit the panel

    assert "disabled" not in analyse.heatmap_check.state()
    analyse.heatmap_check.invoke()
    pump(app.root, lambda: True, timeout=0.2)
    with_heat = np.asarray(analyse.panel.displayed).copy()
    assert with_heat.shape == plain.shape and not np.array_equal(with_heat, plain)
    analyse.opacity_var.set(0.9)
    analyse._opacity_moved()
    assert not np.array_equal(np.asarray(analyse.panel.displayed), with_heat)
    analyse.heatmap_check.invoke()
    assert np.array_equal(np.asarray(analyse.panel.displayed), plain)

    # Another class's evidence is computed on the worker.
    analyse.class_var.set("normal")
    analyse._class_chosen()
    pump(app.root, lambda: "normal" in analyse.heatmaps)

    # The "Computing…" message does not outlive the heatmap.
    pump(app.root, lambda: not app.status_var.get().startswith("Computing the heatmap"))
    assert app.status_var.get() == "Heatmap for normal."

    # Export report, to a path the (patched) dialog returns: with the heatmap of the class chosen.
    from retina_desktop.services import report

    out = tmp_path / "report.pdf"
    monkeypatch.setattr("tkinter.filedialog.asksaveasfilename", lambda **kw: str(out))
    exported, export = [], report.export_report
    monkeypatch.setattr(report, "export_report", lambda *a, **kw: exported.append(kw) or export(*a, **kw))
    app.export_report()
    pump(app.root, lambda: out.exists() and "Report saved" in app.status_var.get())
    assert out.read_bytes().startswith(b"%PDF")
    assert exported[0]["heatmap_class"] == "normal"
    assert exported[0]["heatmap"] is analyse.heatmaps["normal"]
    assert not app.errors
    assert "MainThread" not in real_classifier.model_threads


def test_bad_files_show_messages_and_the_app_keeps_working(make_app, tmp_path, monkeypatch) -> None:
    fake = FakeClassifier()
    app = make_app(fake)
    pump(app.root, lambda: app.model_ready)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    # A cancelled dialog does nothing.
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: "")
    app.analyse.browse_button.invoke()
    pump(app.root, lambda: True, timeout=0.2)
    assert app.analyse.busy_path is None and not app.errors

    assert app.analyse.open_image(bad)
    # Clicking again while busy: a message, not a second job.
    assert not app.analyse.open_image(bad)
    assert "Still analysing" in app.status_var.get()
    pump(app.root, lambda: app.errors and app.analyse.busy_path is None)
    title, message = app.errors[-1]
    assert str(bad) in message and "not an image" in message
    assert app.analyse.result_var.get() == "No result yet."

    missing = tmp_path / "gone.png"
    app.analyse.open_image(missing)
    pump(app.root, lambda: len(app.errors) == 2 and app.analyse.busy_path is None)
    assert "File not found" in app.errors[-1][1]

    good = picture(tmp_path)
    app.analyse.open_image(good)
    pump(app.root, lambda: app.analyse.prediction is not None and app.analyse.busy_path is None)
    assert app.analyse.result_var.get().startswith("Model output: glaucoma")
    assert "MainThread" not in fake.model_threads


def test_unexpected_errors_are_logged_and_named(make_app, tmp_path, monkeypatch) -> None:
    app = make_app(FakeClassifier())
    logged = []
    log = tmp_path / "retina-desktop.log"

    def fake_log(message, exc):
        logged.append(exc)
        return log

    monkeypatch.setattr("retina_desktop.gui.main_window.log_unexpected", fake_log)
    try:
        raise RuntimeError("boom")
    except RuntimeError as err:
        app.root.report_callback_exception(type(err), err, err.__traceback__)
    assert app.errors[-1][1] == f"Unexpected error, see {log}"
    assert isinstance(logged[0], RuntimeError)
    # A UserError in a callback is shown as its plain message.
    error = ImageError('"x.png" is empty (0 bytes)')
    app.root.report_callback_exception(type(error), error, None)
    assert app.errors[-1][1] == str(error)


def test_a_model_that_fails_to_open_keeps_the_previous_one(make_app, tmp_path, monkeypatch) -> None:
    fake = FakeClassifier()
    app = make_app(fake, classifier_factory=lambda *a, **k: BrokenClassifier())
    pump(app.root, lambda: app.model_ready)
    model = tmp_path / "other.h5"
    model.write_text("not a model")
    (tmp_path / "labels.txt").write_text("0 a\n1 b\n")
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(model))
    app.open_model()
    pump(app.root, lambda: app.errors and app._opening_model is None)
    assert "not a model file" in app.errors[-1][1] and "Still using fake model" in app.errors[-1][1]
    assert app.classifier is fake and app.model_ready and "fake model" in app.model_var.get()


class BrokenClassifier(FakeClassifier):
    def bundle(self):
        raise ModelError('"other.h5" is not a model file')


@pytest.mark.skipif(not (SHARED_DATA / "fundus4").is_dir(), reason=f"real data not found at {SHARED_DATA}")
def test_batch_runs_a_folder_of_real_images(make_app, real_classifier, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "clinic"
    folder.mkdir()
    sources = []
    for class_dir in sorted((SHARED_DATA / "fundus4").iterdir()):
        if class_dir.is_dir():
            sources += sorted(class_dir.iterdir())[:2]
    for source in sources[:6]:
        (folder / f"{source.parent.name}_{source.name}").symlink_to(source)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    app = make_app(real_classifier)
    app.notebook.select(app.batch)
    monkeypatch.setattr("tkinter.filedialog.askdirectory", lambda **kw: str(folder))
    app.batch.folder_button.invoke()
    assert not app.batch.run(folder)  # a second run while one is going: refused with a message
    pump(app.root, lambda: not app.batch.running, timeout=90)
    batch = app.batch
    items = batch.tree.get_children()
    assert len(items) == 7
    labelled = [batch.tree.item(i, "values") for i in items if batch.tree.item(i, "values")[1]]
    assert len(labelled) == 6
    errors = [batch.tree.item(i, "values") for i in items if "error" in batch.tree.item(i, "tags")]
    assert len(errors) == 1 and "broken.jpg" in errors[0][0]
    assert errors[0][3].startswith("Not an image file")
    assert "6 classified, 1 could not be read" in batch.summary_var.get()
    assert float(batch.progress.cget("value")) == float(batch.progress.cget("maximum")) == 7

    # Sort by confidence, highest first.
    batch.sort_by("confidence")
    shown = [batch.tree.item(i, "values")[2] for i in batch.tree.get_children()]
    numbers = [float(v.rstrip("%")) for v in shown if v]
    assert numbers == sorted(numbers, reverse=True)

    # Export CSV.
    out = tmp_path / "results.csv"
    monkeypatch.setattr("tkinter.filedialog.asksaveasfilename", lambda **kw: str(out))
    batch.export_button.invoke()
    pump(app.root, lambda: out.exists())
    assert len(out.read_text().strip().splitlines()) == 8

    # Double-click opens the row in the Analyse tab.
    first = batch.tree.get_children()[0]
    batch.tree.selection_set(first)
    batch._double_click()
    assert app.notebook.select() == str(app.analyse)
    pump(app.root, lambda: app.analyse.prediction is not None and app.analyse.busy_path is None)
    assert app.analyse.prediction.file == batch._items[first].file
    assert not app.errors
    assert "MainThread" not in real_classifier.model_threads


def test_the_service_and_the_fakes_implement_the_gui_protocol(small_bundle) -> None:
    from retina_desktop.gui.service_api import ClassifierService
    from retina_desktop.services.classify import Classifier

    for classifier in (Classifier(small_bundle), FakeClassifier(), BrokenClassifier(), ScriptedClassifier()):
        assert isinstance(classifier, ClassifierService), type(classifier).__name__


def test_gui_modules_import_no_tensorflow() -> None:
    import ast

    folder = Path(__file__).resolve().parents[1] / "retina_desktop" / "gui"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("tensorflow", "keras", "tf_keras"), (path.name, name)


def test_an_image_that_fails_its_checks_is_not_judged(make_app, real_classifier, tmp_path, monkeypatch) -> None:
    app = make_app(real_classifier)
    dark = tmp_path / "dark.png"
    from PIL import Image

    Image.new("RGB", (300, 300), (4, 4, 4)).save(dark)
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(dark))
    pump(app.root, lambda: app.model_ready)
    app.analyse.browse_button.invoke()
    pump(app.root, lambda: app.analyse.prediction is not None)
    assert app.analyse.result_var.get() == "Not judged: the image is not fit for this model"
    warning = app.analyse.warning_var.get()
    assert "too dark to judge" in warning and "for reference only" in warning
    assert set(app.analyse.chart.values) == set(CLASSES)  # the probabilities stay visible
    assert "MainThread" not in real_classifier.model_threads


def test_settings_dialog_saves_overrides_and_applies_them(make_app, tmp_path, monkeypatch) -> None:
    from retina_desktop.core.settings import load_settings

    fake = FakeClassifier()
    app = make_app(fake)
    pump(app.root, lambda: app.model_ready)
    app.open_settings()
    dialog = app.settings_dialog
    dialog.override_vars["min_side"].set("oops")
    dialog.save_button.invoke()
    assert "not a number" in dialog.error_var.get() and dialog.winfo_exists()
    dialog.override_vars["min_side"].set("64")
    dialog.unsure_var.set("0.75")
    dialog.checks_var.set(False)
    dialog.save_button.invoke()
    assert fake.settings == Settings(checks_enabled=False, check_overrides={"min_side": 64.0}, unsure_below=0.75)
    assert load_settings() == fake.settings
    assert app.unsure_below == 0.75


def test_stopping_a_worker_drops_queued_jobs_and_joins():
    import queue as queue_module

    from retina_desktop.gui.worker import Worker

    messages = queue_module.Queue()
    worker = Worker(messages, "test-worker")
    started, gate, ran = threading.Event(), threading.Event(), []
    worker.submit("first", lambda: (started.set(), gate.wait(5), ran.append("first")))
    worker.submit("second", lambda: ran.append("second"))
    assert started.wait(5)
    worker.stop()
    gate.set()
    assert worker.join(5)
    assert ran == ["first"]  # the running job finished; the queued one was dropped


# ---- honest answers (issue #19): thresholds, unsure, not judged, the status bar ---------------

OCT_METADATA = ModelMetadata(
    classes=["DME", "NO_DME"], input=InputSpec(32, 32, "stretch", "none"), modality="oct", name="fake OCT",
    version="1",
    decision={"positive_class": "DME", "threshold": 0.150849, "chosen_on": "val split, specificity >= 0.9"},
)


class ScriptedClassifier(FakeClassifier):
    """A fake that answers with `probs` under `metadata`, the label chosen as the service does."""

    def __init__(self, *args, metadata=OCT_METADATA, probs=(0.45, 0.55), checks=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.metadata, self.probs, self.checks = metadata, list(probs), checks

    def bundle(self):
        bundle = super().bundle()
        bundle.metadata = self.metadata
        return bundle

    def predict_file(self, path) -> Prediction:
        bundle = self.bundle()
        loaded = load_image(path).rgb
        fitted = fit_image(loaded, bundle.metadata.input)
        best = self.metadata.label_for(self.probs)
        return Prediction(str(path), self.metadata.classes[best], self.probs[best],
                          dict(zip(self.metadata.classes, self.probs)), fitted, self.metadata.name, "fake.h5",
                          checks=self.checks, operating_point=self.metadata.operating_point(),
                          picture=np.asarray(loaded))

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        self.bundle()
        return np.tile(self.probs, (len(images), 1))


def test_a_thresholded_answer_names_its_threshold_and_marks_it_on_the_chart(make_app, tmp_path) -> None:
    app = make_app(ScriptedClassifier())
    pump(app.root, lambda: app.model_ready and app.analyse.chart.canvas is not None)
    assert "model version 1" in app.model_var.get() and "threshold 0.15 for DME" in app.model_var.get()
    app.analyse.open_image(picture(tmp_path))
    pump(app.root, lambda: app.analyse.prediction is not None)
    analyse = app.analyse
    # The label is the model's decision, DME, though NO DME has the longer bar: the threshold says why.
    assert analyse.result_var.get() == "Unsure: DME (p(DME) 0.45, threshold 0.15)"
    assert analyse.explanation_var.get() == (
        "Reported as DME because p(DME) = 0.45 is above the operating threshold 0.15 "
        "(chosen on val split, specificity >= 0.9), although NO DME has the longer bar."
    )
    assert analyse.explanation_label.winfo_ismapped()
    assert "below the unsure level 0.60" in analyse.warning_var.get()
    chart = analyse.chart
    assert chart.operating_point.threshold == 0.150849 and not chart.greyed
    [marker] = chart.figure.axes[0].lines
    assert marker.get_xdata()[0] == pytest.approx(0.150849)
    # Settings and About show the rule too.
    app.open_settings()
    assert app.settings_dialog.decision_text == (
        "reports DME when p(DME) is 0.151 or more, else NO DME (threshold chosen on val split, specificity >= 0.9)")
    app.settings_dialog.destroy()
    from retina_desktop.gui.dialogs import about_text

    assert "Decision: reports DME when p(DME) is 0.151 or more" in about_text(app.metadata, "fake.h5")


def test_a_not_judged_image_greys_the_chart_and_offers_the_model_that_reads_it(make_app, tmp_path) -> None:
    from matplotlib.colors import to_hex

    from retina_desktop.core.paths import bundle_root
    from retina_desktop.core.prediction import CheckResult
    from retina_desktop.services.report import GREY_COLOUR

    checks = CheckResult(False, ["looks like an OCT B-scan (97%), but this model reads colour fundus photographs"],
                         looks_like="oct", suggested_model="models/oct/keras_model.h5")
    fundus = ModelMetadata(classes=list(CLASSES), input=InputSpec(32, 32, "crop", "none"), modality="fundus",
                           name="fake model", version="2")
    opened = []
    app = make_app(ScriptedClassifier(metadata=fundus, probs=(0.0, 0.0, 1.0, 0.0), checks=checks),
                   classifier_factory=lambda path, labels, **kw: opened.append(path) or ScriptedClassifier(path))
    pump(app.root, lambda: app.model_ready and app.analyse.chart.canvas is not None)
    app.analyse.open_image(picture(tmp_path))
    pump(app.root, lambda: app.analyse.prediction is not None)
    analyse = app.analyse
    assert analyse.result_var.get() == "Not judged: the image is not fit for this model"
    assert "glaucoma" not in analyse.result_var.get() + analyse.warning_var.get()
    assert analyse.chart.greyed
    bars = analyse.chart.figure.axes[0].patches
    assert {to_hex(bar.get_facecolor()) for bar in bars} == {GREY_COLOUR}  # no bold 100% bar
    assert analyse.hint_var.get() == (
        "This looks like an OCT B-scan: open models/oct/keras_model.h5 (File > Open model)."
    )
    assert analyse.hint.winfo_ismapped() and analyse.hint_button.cget("text") == "Open the OCT model"
    analyse.hint_button.invoke()
    assert opened == [bundle_root() / "models" / "oct" / "keras_model.h5"]
    pump(app.root, lambda: app._opening_model is None and app.analyse.prediction is not None)
    assert not app.analyse.hint.winfo_ismapped()


def test_the_status_bar_elides_long_messages_and_the_notice_stays_at_900x600(make_app) -> None:
    from retina_desktop.services.report import NOTICE

    app = make_app(FakeClassifier())
    pump(app.root, lambda: app.model_ready)
    app.root.geometry("900x600")
    long = "Exported 64 images and manifest.csv to " + "/very/long/folder" * 12
    app.set_status(long)
    pump(app.root, lambda: app.root.winfo_width() == 900 and app.root.winfo_height() == 600, timeout=5)
    pump(app.root, lambda: app.status_bar.message.elided, timeout=5)
    message = app.status_bar.message
    shown = str(message.cget("text"))
    assert shown.endswith("…") and long.startswith(shown[:-1].rstrip())
    assert message.tooltip.text() == long  # the full text, on hover
    message.tooltip.show()
    assert message.tooltip.window is not None
    message.tooltip.hide()
    app.set_status("Ready.")
    pump(app.root, lambda: True, timeout=0.2)
    assert str(message.cget("text")) == "Ready." and message.tooltip.text() == ""
    # The notice and the status bar keep their place at the bottom of a small window.
    notice = app.notice
    assert notice.cget("text") == NOTICE and notice.winfo_ismapped()
    bottom = notice.winfo_rooty() + notice.winfo_height()
    assert bottom <= app.root.winfo_rooty() + app.root.winfo_height()
    assert app.status_bar.winfo_rooty() + app.status_bar.winfo_height() <= app.root.winfo_rooty() + 600
    assert "model version 9" in app.model_var.get()


def test_elide_keeps_the_longest_start_that_fits() -> None:
    from retina_desktop.gui.status_bar import elide

    def measure(text):
        return 10 * len(text)

    assert elide("short", 100, measure) == "short"
    assert elide("a long message here", 100, measure) == "a long me…"
    assert measure(elide("x" * 50, 95, measure)) <= 95


def test_an_unfamiliar_image_keeps_its_answer_with_a_warning_line(make_app, tmp_path) -> None:
    import dataclasses

    class Unfamiliar(ScriptedClassifier):
        def predict_file(self, path) -> Prediction:
            prediction = super().predict_file(path)
            return dataclasses.replace(prediction, familiarity_distance=2.3, familiarity_threshold=1.66)

    fundus = ModelMetadata(classes=list(CLASSES), input=InputSpec(32, 32, "crop", "none"), modality="fundus",
                           name="fake model", version="2")
    app = make_app(Unfamiliar(metadata=fundus, probs=(0.05, 0.05, 0.85, 0.05)))
    pump(app.root, lambda: app.model_ready and app.analyse.chart.canvas is not None)
    app.analyse.open_image(picture(tmp_path))
    pump(app.root, lambda: app.analyse.prediction is not None)
    analyse = app.analyse
    assert analyse.result_var.get() == "Model output: glaucoma (85% confidence)"  # the answer stays
    assert analyse.warning_var.get() == (
        "Unfamiliar image: unlike the images this model learned from (distance 2.30, flagged above 1.66); "
        "its output may be unreliable."
    )
    assert analyse.warning_label.winfo_ismapped() and not analyse.chart.greyed


class RefusedCompiledCopyClassifier(FakeClassifier):
    """A model whose compiled copy was refused, as `find_compiled` refuses a changed .tflite."""

    PROBLEM = ('Compiled model "fake.tflite" is not the file its manifest recorded (its bytes changed after '
               "compiling); not used")

    def bundle(self):
        bundle = super().bundle()
        bundle.compiled_problem = self.PROBLEM
        return bundle


def test_a_refused_compiled_copy_is_shown_in_the_status_bar_once(make_app, tmp_path, monkeypatch) -> None:
    # Issue #34: the refusal was only logged, so a clinic PC's user never saw it.
    fake = RefusedCompiledCopyClassifier()
    app = make_app(fake, classifier_factory=lambda *a, **k: FakeClassifier())
    # Every message, not only the last: the Augment tab may say its generator is ready after.
    shown: list[str] = []
    app.status_var.trace_add("write", lambda *_: shown.append(app.status_var.get()))
    pump(app.root, lambda: app.model_ready)
    told = [text for text in shown if text.startswith(RefusedCompiledCopyClassifier.PROBLEM)]
    assert len(told) == 1 and "model file is used instead" in told[0] and "\n" not in told[0]
    assert "MainThread" not in fake.model_threads
    # Another model with no such problem says nothing of it.
    shown.clear()
    model = tmp_path / "other.h5"
    model.write_text("fake")
    (tmp_path / "labels.txt").write_text("0 a\n1 b\n")
    app.open_model(model)
    pump(app.root, lambda: app._opening_model is None and app.classifier is not fake)
    assert "Model fake model loaded." in shown and not any("Compiled model" in text for text in shown)
