"""`retina-desktop --self-test`: is this installation whole and working? A report for support.

Checks the bundled models (file, labels, sidecar, a compiled copy up to date with the model
file), each model's answer and heatmap on a synthetic image drawn here, the Augment tab's
generators (compiled copy, a drawn sample), the assets, and Tcl/Tk;
prints one line per check and writes the same report to the user's log folder. Exit status 0
when every required check passed, 1 otherwise. Runs in a few tenths of a second on the compiled
path and never needs a display.
"""

from __future__ import annotations

import datetime as dt
import functools
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from retina_desktop import __version__
from retina_desktop.core.paths import (
    assets_dir,
    bundle_root,
    default_model_path,
    modality_model_path,
    models_dir,
    user_log_dir,
)
from retina_desktop.inference.litert_backend import model_available


def _synthetic(kind: str) -> np.ndarray:
    """A seeded stand-in image: a bright disc on black (fundus) or bright bands (OCT)."""
    rng = np.random.default_rng(0)
    if kind == "oct":
        yy = np.mgrid[:256, :512][0]
        band = np.exp(-(((yy - 128 + 20 * np.sin(np.arange(512) / 60)) / 18.0) ** 2))
        grey = np.clip(200 * band + rng.normal(0, 15, band.shape), 0, 255)
        return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
    yy, xx = np.mgrid[:384, :384]
    disc = ((yy - 192) ** 2 + (xx - 192) ** 2) < 170**2
    pixels = np.zeros((384, 384, 3))
    pixels[disc] = (200, 90, 40)
    pixels += rng.normal(0, 12, pixels.shape) * disc[..., None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


class _Report:
    def __init__(self, echo: Callable[[str], None]) -> None:
        self.lines: list[str] = []
        self.failures = 0
        self.echo = echo

    def line(self, text: str) -> None:
        self.lines.append(text)
        self.echo(text)

    def check(self, name: str, fn: Callable[[], str], *, required: bool = True) -> None:
        start = time.perf_counter()
        try:
            detail = fn()
            status = "ok  "
        except Exception as err:  # every failure is a line of the report, not a crash
            detail = f"{type(err).__name__}: {err}"
            status = "FAIL" if required else "warn"
            self.failures += required
        self.line(f"[{status}] {name}: {detail} ({(time.perf_counter() - start) * 1000:.0f} ms)")


def _check_model(path: Path, kind: str) -> str:
    from PIL import Image

    from retina_desktop.core.settings import Settings
    from retina_desktop.inference.heatmaps import heatmap_for
    from retina_desktop.inference.litert_backend import find_compiled
    from retina_desktop.inference.model_files import labels_path_for, read_labels, sidecar_path_for
    from retina_desktop.services.classify import Classifier

    if not model_available(path):
        raise FileNotFoundError(f'"{path}" is missing')
    classes = read_labels(labels_path_for(path))
    sidecar = "sidecar" if sidecar_path_for(path).is_file() else "no sidecar"
    compiled = find_compiled(path)
    classifier = Classifier(path, settings=Settings(checks_enabled=False))
    bundle = classifier.bundle()
    prediction = _prediction(classifier, Image.fromarray(_synthetic(kind)))
    probs = np.array(list(prediction.probabilities.values()))
    if not (np.isfinite(probs).all() and abs(probs.sum() - 1.0) < 1e-3):
        raise ValueError(f"the model's output is not a probability vector: {probs}")
    try:
        values = heatmap_for(classifier, prediction)
        heat = f"heatmap {values.shape[1]}x{values.shape[0]}"
    except ValueError as err:
        heat = f"no heatmap ({err})"
    return (
        f"{len(classes)} classes, {sidecar}, "
        f"{'compiled copy current' if compiled else 'NO current compiled copy'}, runs on {bundle.backend}; "
        f"synthetic image -> {prediction.label} {prediction.confidence:.2f}; {heat}"
    )


def _prediction(classifier, image):
    """A `Prediction` for an in-memory image, as `predict_file` would make it (no checks)."""
    from retina_desktop.core.prediction import Prediction
    from retina_desktop.imaging.preprocessing import fit_image

    bundle = classifier.bundle()
    fitted = fit_image(image, bundle.metadata.input)
    probs = classifier.predict_arrays(fitted[None])[0]
    best = int(np.argmax(probs))
    return Prediction(
        file="<synthetic>",
        label=bundle.classes[best],
        confidence=float(probs[best]),
        probabilities=dict(zip(bundle.classes, map(float, probs))),
        processed_image=fitted,
        model_name=bundle.metadata.name,
        model_path=str(bundle.path),
    )


def _check_assets() -> str:
    folder = assets_dir()
    icon = folder / "icon.png"
    if not icon.is_file():
        raise FileNotFoundError(f'"{icon}" is missing')
    from PIL import Image

    with Image.open(icon) as img:
        img.load()
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    return f"{folder} ({count} files, icon {img.size[0]}x{img.size[1]})"


def _check_tk() -> str:
    # The Tcl interpreter that tkinter would start, without tkinter (this is not GUI code) and
    # without Tk's window (no display needed): proves the bundled Tcl library loads.
    import _tkinter
    import importlib.util

    interp = _tkinter.create(None, "retina-self-test", "Tk", False, False, False, False, None)
    version = interp.call("info", "patchlevel")
    library = interp.call("info", "library")
    dnd = "tkinterdnd2 present" if importlib.util.find_spec("tkinterdnd2") else "tkinterdnd2 absent (no drag and drop)"
    return f"Tcl {version} ({library}), Tk {_tkinter.TK_VERSION}; {dnd}"


def _check_no_tensorflow() -> str:
    loaded = [m for m in ("tensorflow", "keras") if m in sys.modules]
    if getattr(sys, "frozen", False) and loaded:
        raise RuntimeError(f"the packaged app imported {loaded}")
    return "not imported" if not loaded else f"imported ({', '.join(loaded)}): a model ran on the Keras path"


def _check_generator(path: Path) -> str:
    """A shipped generator: sidecar, a compiled copy up to date, and it draws an image."""
    from retina_desktop.inference.generator_runtime import CONDITIONAL, Generator, read_generator_info
    from retina_desktop.inference.litert_backend import find_compiled
    from retina_desktop.services.synthetic_samples import sample
    from retina_desktop.services.vessel_synthesis import generator_input, random_vessel_tree

    info = read_generator_info(path)
    compiled = find_compiled(info.path)
    if compiled is None:
        raise FileNotFoundError(f"no compiled copy of {path.name} up to date with it")
    generator = Generator(info, compiled)
    started = time.perf_counter()
    if info.kind == CONDITIONAL:
        images = [i.pixels for i in sample(generator, info.classes[0], 8, seed=0)]
        what = f"classes {', '.join(info.classes)}; 8 images"
    else:
        vessels, fov = random_vessel_tree(info.size, seed=0)
        images = list(generator.translate(generator_input(vessels, fov, info.styles[0], info.styles, info.size)))
        what = f"styles {', '.join(info.styles)}; 1 image"
    seconds = time.perf_counter() - started
    if float(np.std(images)) < 1.0:
        raise ValueError("it draws flat images")
    return f"{what} of {info.size} px in {seconds * 1000:.0f} ms"


def run_self_test(echo: Callable[[str], None] = print, report_dir: Path | None = None) -> int:
    """Run every check, print the report and write it to the log folder; 0 when all passed."""
    report = _Report(echo)
    frozen = "frozen build" if getattr(sys, "frozen", False) else "from source"
    report.line(f"Retina Desktop {__version__} self-test, {dt.datetime.now().isoformat(timespec='seconds')}")
    report.line(
        f"{frozen}, Python {platform.python_version()}, {platform.platform()}; bundled files in {bundle_root()}"
    )
    report.check("default model (fundus)", lambda: _check_model(default_model_path(), "fundus"))
    report.check("image-check model (modality)", lambda: _check_model(modality_model_path(), "fundus"))
    oct_model = models_dir() / "oct" / "keras_model.h5"
    report.check("OCT model", lambda: _check_model(oct_model, "oct"), required=model_available(oct_model))
    for name, path in (("fundus generator (Augment tab)", models_dir() / "generator.keras"),
                       ("OCT generator (Augment tab)", models_dir() / "oct" / "generator.keras"),
                       ("vessel-to-fundus generator (Augment tab)", models_dir() / "vessels" / "generator.keras")):
        if model_available(path):
            report.check(name, functools.partial(_check_generator, path), required=True)
    report.check("assets", _check_assets)
    report.check("Tcl/Tk", _check_tk)
    report.check("TensorFlow", _check_no_tensorflow)
    verdict = "all checks passed" if not report.failures else f"{report.failures} check(s) FAILED"
    report.line(f"Result: {verdict}.")
    try:
        folder = report_dir or user_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"self-test-{dt.datetime.now():%Y%m%d-%H%M%S}.txt"
        path.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
        echo(f"Report written to {path}")
    except OSError as err:
        echo(f"(could not write the report file: {err})")
    return 0 if not report.failures else 1
