"""What the GUI tests share: a display (Xvfb), the session's real classifier, a fake one where
the model is not the point, a window factory, and a Tk event pump. The fixtures are registered
by tests/conftest.py, so a test asks for them by name without importing them."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.core.prediction import Prediction
from retina_desktop.core.settings import Settings
from retina_desktop.imaging.decode import load_image
from retina_desktop.imaging.preprocessing import fit_image
from tests.conftest import CLASSES
from tests.virtual_display import pump  # noqa: F401  (the GUI tests import it from here)


@pytest.fixture(scope="session")
def display():
    """A DISPLAY for Tk: the one set, else an Xvfb started for the session."""
    pytest.importorskip("tkinter")
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed and no DISPLAY is set: GUI tests need a display")
    from tests.virtual_display import virtual_display

    with virtual_display(1280, 800) as name:
        os.environ["DISPLAY"] = name
        try:
            yield name
        finally:
            os.environ.pop("DISPLAY", None)


@pytest.fixture(scope="session")
def real_classifier(small_bundle):
    """One classifier for the session, loaded by the first window's worker thread."""
    from retina_desktop.services.classify import Classifier

    return Classifier(small_bundle)


class FakeBundle:
    def __init__(self) -> None:
        self.model = None
        self.path = Path("fake.h5")
        self.metadata = ModelMetadata(classes=list(CLASSES), input=InputSpec(32, 32, "crop", "none"),
                                      modality="fundus", name="fake model", version="9")
        self.compiled_problem = ""

    @property
    def classes(self):
        return self.metadata.classes


class FakeClassifier:
    """Answers like the service (it implements gui.service_api.ClassifierService); `bundle()`
    waits for `release` (a slow model load)."""

    def __init__(self, model_path="fake.h5", labels_path=None, *, trust_model=False, slow=False) -> None:
        self.model_path = Path(model_path)
        self.settings = Settings()
        self._lock = threading.RLock()
        self.model_threads: set[str] = set()
        self.release = threading.Event()
        if not slow:
            self.release.set()
        self._bundle = None

    @property
    def loaded(self) -> bool:
        return self._bundle is not None

    def bundle(self):
        self.model_threads.add(threading.current_thread().name)
        if not self.release.wait(30):
            raise ModelError("fake model never released")
        self._bundle = FakeBundle()
        return self._bundle

    def predict_file(self, path) -> Prediction:
        bundle = self.bundle()
        self.model_threads.add(threading.current_thread().name)
        loaded = load_image(path).rgb
        fitted = fit_image(loaded, bundle.metadata.input)
        probs = np.array([0.1, 0.15, 0.7, 0.05])
        return Prediction(str(path), "glaucoma", 0.7, dict(zip(CLASSES, probs.tolist())), fitted, "fake model",
                          "fake.h5", picture=np.asarray(loaded))

    def predict_files(self, paths):
        for path in paths:
            try:
                yield Path(path), self.predict_file(path)
            except UserError as err:
                yield Path(path), err

    def predict_arrays(self, images: np.ndarray) -> np.ndarray:
        self.bundle()
        self.model_threads.add(threading.current_thread().name)
        return np.tile([0.1, 0.15, 0.7, 0.05], (len(images), 1))

    def heatmap(self, prediction: Prediction, class_name: str | None = None) -> np.ndarray:
        self.bundle()
        self.model_threads.add(threading.current_thread().name)
        raise ValueError("the fake model has no convolutional (4-D) layer for a heatmap")


@pytest.fixture
def make_app(display, monkeypatch):
    from retina_desktop.gui.main_window import MainWindow

    apps = []
    errors: list[tuple[str, str]] = []
    monkeypatch.setattr("tkinter.messagebox.showerror", lambda title, message, **kw: errors.append((title, message)))
    monkeypatch.setattr("tkinter.messagebox.showinfo", lambda title, message, **kw: errors.append((title, message)))

    def make(classifier, **kwargs):
        import tkinter as tk

        root = tk.Tk()
        app = MainWindow(root, classifier, **kwargs)
        app.errors = errors
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.quit()
    # Tk objects of a closed window must be freed here, on the Tk thread: left to a later
    # garbage collection they could be freed on another test's worker thread, which Tk refuses.
    import gc

    gc.collect()
