"""The inference service: `predict_class(image_path)` and the `Classifier` behind it.

The model is loaded once, lazily, on first use, and reused. Loading and predicting are safe to
call from a worker thread (and from several: a lock serialises them).

What runs the model is the bundle's runtime (`runtime.ModelRuntime`, chosen by
`bundle.load_bundle`): the LiteRT interpreter when the model has a compiled copy up to date with
its file (see `litert_backend`), and then TensorFlow is never imported, which is how the
packaged app runs; otherwise Keras, and with the default backend "auto" the model is compiled
into the user's cache on first open so that every later open is fast.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.core.model_card import CheckThresholds, InputSpec
from retina_desktop.core.paths import bundle_root, default_model_path, modality_model_path, models_dir
from retina_desktop.core.prediction import CheckResult, Prediction
from retina_desktop.core.settings import Settings, load_settings
from retina_desktop.imaging.checks import judge, measure
from retina_desktop.imaging.decode import LoadedImage, load_image
from retina_desktop.imaging.fov import UNSEARCHED, find_field_of_view
from retina_desktop.imaging.preprocessing import fit_image, prepare_batch
from retina_desktop.inference.blas_threads import one_blas_thread
from retina_desktop.inference.bundle import ModelBundle
from retina_desktop.inference.calibration import apply_temperature
from retina_desktop.inference.heatmaps import gradcam
from retina_desktop.inference.litert_backend import model_available
from retina_desktop.inference.model_files import labels_path_for, sidecar_path_for
from retina_desktop.inference.open_model import open_classifier

log = logging.getLogger(__name__)


class Classifier:
    """One model, loaded on first use. Every method may be called from any thread."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        labels_path: str | Path | None = None,
        *,
        trust_model: bool = False,
        settings: Settings | None = None,
        modality_model: str | Path | None = None,
        backend: str = "auto",
    ) -> None:
        """`backend`: "auto" (LiteRT when possible, see `bundle.load_bundle`), "keras" or "litert"."""
        self.model_path = Path(model_path) if model_path else default_model_path()
        self.labels_path = Path(labels_path) if labels_path else None
        self.trust_model = trust_model
        self.settings = settings if settings is not None else load_settings()
        self.backend = backend
        self._modality_path = Path(modality_model) if modality_model else modality_model_path()
        self._modality: Classifier | None = None
        self._bundle: ModelBundle | None = None
        self._lock = threading.RLock()
        # Which threads ran model code: the GUI's tests assert the Tk thread never does.
        self.model_threads: set[str] = set()

    def bundle(self) -> ModelBundle:
        """The loaded bundle (loads it on first call; raises `ModelError` on a bad model)."""
        with self._lock:
            if self._bundle is None:
                self.model_threads.add(threading.current_thread().name)
                self._bundle = open_classifier(
                    self.model_path, self.labels_path, trust_model=self.trust_model, backend=self.backend
                )
            return self._bundle

    @property
    def loaded(self) -> bool:
        return self._bundle is not None

    def predict_arrays(self, images: np.ndarray, *, calibrated: bool = True, batch_size: int = 32) -> np.ndarray:
        """Class probabilities for fitted uint8 images (n, h, w, 3)."""
        probs, _ = self._run_model(images, calibrated, batch_size, with_features=False)
        return probs

    def predict_features(
        self, images: np.ndarray, *, calibrated: bool = True, batch_size: int = 32
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Class probabilities for fitted uint8 images (n, h, w, 3) and, from the same model
        call, each image's features for the unfamiliar-image flag: the global average of the
        feature maps heatmaps read (familiarity.py), (n, k); None when the model has no such
        layer. Either runtime gives the same features."""
        return self._run_model(images, calibrated, batch_size, with_features=True)

    def _run_model(
        self, images: np.ndarray, calibrated: bool, batch_size: int, *, with_features: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The one batched model loop behind `predict_arrays` and `predict_features`."""
        bundle = self.bundle()
        with self._lock:
            self.model_threads.add(threading.current_thread().name)
            outputs: list[np.ndarray] = []
            features: list[np.ndarray | None] = []
            for start in range(0, len(images), batch_size):
                batch = prepare_batch(list(images[start : start + batch_size]), bundle.metadata.input)
                if with_features:
                    probs, pooled = bundle.runtime.predict_with_features(batch)
                    features.append(pooled)
                else:
                    probs = bundle.runtime.predict(batch)
                outputs.append(np.asarray(probs, dtype=np.float64))
        probs = np.concatenate(outputs) if outputs else np.zeros((0, len(bundle.classes)))
        temperature = bundle.metadata.temperature
        if calibrated and temperature and abs(temperature - 1.0) > 1e-9:
            probs = apply_temperature(probs, temperature)
        if not features or any(f is None for f in features):
            return probs, None
        return probs, np.concatenate([f for f in features if f is not None])

    def heatmap(self, prediction: Prediction, class_name: str | None = None) -> np.ndarray:
        """Grad-CAM (`heatmaps.gradcam`) over the image the model saw for `prediction`, for
        `class_name` (default: the predicted class); raises `ValueError` for a class the model
        does not have or a model it cannot explain. Any thread: serialised with the other
        model calls."""
        bundle = self.bundle()
        name = class_name or prediction.label
        if name not in bundle.classes:
            raise ValueError(f"{name!r} is not one of the model's classes {bundle.classes}")
        with self._lock:
            self.model_threads.add(threading.current_thread().name)
            with one_blas_thread():
                return gradcam(bundle, prediction.processed_image, bundle.classes.index(name))

    def thresholds(self) -> CheckThresholds:
        """The model's fitted check thresholds with the user's overrides on top."""
        fitted = dict(self.bundle().metadata.checks.get("thresholds", {}))
        fitted.update(self.settings.check_overrides)
        return CheckThresholds.from_dict(fitted)

    def check_evidence(self, image) -> tuple[dict[str, float], dict[str, float] | None]:
        """Measured statistics of an RGB image, and the modality model's probabilities (None
        when no modality model is installed). Any thread."""
        modality = self.modality_classifier()
        beliefs = None
        if modality is not None:
            spec = modality.bundle().metadata.input
            beliefs = modality.beliefs(modality.predict_arrays(fit_image(image, spec)[None], calibrated=False)[0])
        return measure(image, self.bundle().metadata.input.fit), beliefs

    def beliefs(self, probs: np.ndarray) -> dict[str, float]:
        """One image's probabilities as {class name: probability}."""
        return {name: float(p) for name, p in zip(self.bundle().classes, probs)}

    def check(self, loaded: LoadedImage) -> CheckResult:
        """Is this image of the model's modality and fit to be judged? (Any thread.)"""
        stats, beliefs = self.check_evidence(loaded.rgb)
        return self._verdict(stats, loaded.source_size, beliefs, self.thresholds())

    def _verdict(
        self,
        stats: dict[str, float],
        source_size: tuple[int, int],
        beliefs: dict[str, float] | None,
        thresholds: CheckThresholds,
    ) -> CheckResult:
        verdict = judge(stats, source_size, thresholds, self.bundle().metadata.modality, beliefs)
        if verdict.looks_like:
            model = shipped_model_for(verdict.looks_like)
            if model is not None:
                verdict = dataclasses.replace(verdict, suggested_model=model)
        return verdict

    def modality_classifier(self) -> Classifier | None:
        """The fundus / OCT / other classifier behind the checks, or None when not installed."""
        with self._lock:
            if (self._modality is None and model_available(self._modality_path)
                    and self._modality_path != self.model_path):
                self._modality = Classifier(self._modality_path, settings=self.settings,
                                            modality_model=self._modality_path, backend=self.backend)
            return self._modality

    def predict_file(self, image_path: str | Path) -> Prediction:
        """Read, check, fit, scale and classify one image file. Raises `ImageError` for bad files."""
        plan = self._plan()
        read = self._read(image_path, plan, keep_picture=True)
        [(_, prediction)] = self._classify([(image_path, read)], plan)
        if isinstance(prediction, UserError):  # the model's output for this file was unusable
            raise prediction
        return prediction

    def predict_files(
        self, paths: Iterable[str | Path], *, batch_size: int = 16, readers: int = 2
    ) -> Generator[tuple[Path, Prediction | UserError], None, None]:
        """Classify many files, yielding (path, Prediction or the file's UserError) in order.

        The answers equal `predict_file`'s, but the work is arranged for throughput: `readers`
        threads decode, measure and fit the next files while this thread runs the models on
        batches of `batch_size` (decoding releases the GIL; the models stay on this thread).
        The settings are read once, when the first file is asked for: a change made during the
        run applies to the next run. Closing the iterator drops the files not yet read.
        """
        plan = self._plan()
        # The stdlib's ThreadPool, not ThreadPoolExecutor: its threads are daemons, so a read
        # stuck on a dead network share cannot keep the app from exiting.
        pool = ThreadPool(readers)
        queued: deque[tuple[Path, Any]] = deque()
        try:
            todo = iter(paths)
            while True:
                # Keep two batches in flight, so the readers never wait for the models.
                for path in todo:
                    queued.append((Path(path), pool.apply_async(self._read, (Path(path), plan))))
                    if len(queued) >= 2 * batch_size:
                        break
                if not queued:
                    return
                outcomes: list[tuple[Path, _ReadImage | UserError]] = []
                for path, pending in (queued.popleft() for _ in range(min(batch_size, len(queued)))):
                    try:
                        outcomes.append((path, pending.get()))
                    except UserError as err:
                        outcomes.append((path, err))
                yield from self._classify(outcomes, plan)
        finally:
            pool.terminate()  # drops queued reads; returns without waiting for a stuck one

    def _plan(self) -> _RunPlan:
        """What a run takes from the settings, once: the checks' limits and model, if checking."""
        checking = self.settings.checks_enabled
        modality = self.modality_classifier() if checking else None
        return _RunPlan(
            model_spec=self.bundle().metadata.input,
            thresholds=self.thresholds() if checking else None,
            modality=modality,
            modality_spec=modality.bundle().metadata.input if modality else None,
        )

    def _read(self, path: str | Path, plan: _RunPlan, *, keep_picture: bool = False) -> _ReadImage:
        """Everything for one file but the model calls (any thread: no model code runs here).
        `keep_picture` keeps the decoded picture for the prediction (`Prediction.picture`)."""
        loaded = load_image(path)
        # One search for the field of view serves the model's fit and the checks' statistics.
        circle = find_field_of_view(loaded.rgb) if plan.model_spec.fit == "fov" else UNSEARCHED
        return _ReadImage(
            fitted=fit_image(loaded.rgb, plan.model_spec, circle),
            field_of_view=None if circle is UNSEARCHED or circle is None else _square_around(circle, loaded.rgb.size),
            source_size=loaded.source_size,
            stats=measure(loaded.rgb, plan.model_spec.fit, circle) if plan.thresholds is not None else None,
            modality_input=fit_image(loaded.rgb, plan.modality_spec) if plan.modality_spec is not None else None,
            picture=np.asarray(loaded.rgb) if keep_picture else None,
        )

    def _classify(
        self, outcomes: list[tuple[_PathLike, _ReadImage | UserError]], plan: _RunPlan
    ) -> Iterator[tuple[_PathLike, Prediction | UserError]]:
        """The models on a batch of read files, one call each; a file that failed to read
        yields its error in its place."""
        good = [read for _, read in outcomes if isinstance(read, _ReadImage)]
        bundle = self.bundle()
        distances: Iterator[float | None] = iter([None] * len(good))
        probs: Iterator[np.ndarray] = iter([])
        if good:
            # Features come from the same model call, and only when the model has a flag to feed.
            found, features = self._run_model(np.stack([r.fitted for r in good]), True, 32,
                                              with_features=bundle.familiarity is not None)
            probs = iter(found)
            if features is not None:
                distances = iter(self._distances(bundle, features))
        modality = plan.modality
        beliefs = iter(
            modality.predict_arrays(np.stack([_present(r.modality_input) for r in good]), calibrated=False)
            if good and modality
            else []
        )
        for path, read in outcomes:
            if isinstance(read, UserError):
                yield path, read
                continue
            checks = None
            if plan.thresholds is not None:
                belief = modality.beliefs(next(beliefs)) if modality else None
                checks = self._verdict(_present(read.stats), read.source_size, belief, plan.thresholds)
            found_probs, distance = next(probs), next(distances)
            # A damaged model (or compiled copy) can answer NaN or infinity; shown as a label
            # with "nan%" it would read as an answer, so it is this file's error instead.
            if not np.all(np.isfinite(found_probs)):
                yield path, non_finite_error(path, bundle.path)
                continue
            yield path, self._prediction(path, read.fitted, found_probs, checks, distance, read.picture,
                                         read.field_of_view)

    @staticmethod
    def _distances(bundle: ModelBundle, features: np.ndarray) -> list[float | None]:
        """Each image's familiarity distance; Nones (and the flag off for this bundle, with a
        logged line) when the record does not fit the model's features."""
        familiarity = _present(bundle.familiarity)  # the features were asked for because it is there
        try:
            with one_blas_thread():
                return [float(d) for d in familiarity.distance(features)]
        except ValueError as err:
            bundle.familiarity_problem = (
                f'The familiarity record of "{bundle.path}" does not fit the model: {err}; no unfamiliar-image flag'
            )
            bundle.familiarity = None
            log.warning("%s", bundle.familiarity_problem)
            return [None] * len(features)

    def _prediction(
        self,
        path: str | Path,
        fitted: np.ndarray,
        probs: np.ndarray,
        checks: CheckResult | None,
        distance: float | None = None,
        picture: np.ndarray | None = None,
        field_of_view: tuple[float, float, float, float] | None = None,
    ) -> Prediction:
        bundle = self.bundle()
        familiarity = getattr(bundle, "familiarity", None)
        best = bundle.metadata.label_for(list(map(float, probs)))
        # The answer's wording (records.Answer) needs the rule that chose the label and the
        # unsure level in force, so the prediction carries both.
        return Prediction(
            file=str(path),
            label=bundle.classes[best],
            confidence=float(probs[best]),
            probabilities={name: float(p) for name, p in zip(bundle.classes, probs)},
            processed_image=fitted,
            model_name=bundle.metadata.name,
            model_path=str(bundle.path),
            checks=checks,
            operating_point=bundle.metadata.operating_point(),
            unsure_below=self.settings.unsure_below,
            familiarity_distance=distance,
            familiarity_threshold=familiarity.threshold if familiarity is not None and distance is not None else None,
            picture=picture,
            field_of_view=field_of_view,
        )


def non_finite_error(path: str | Path, model_path: Path) -> ModelError:
    """The error for a file the model answered with NaN or infinity (no label is shown)."""
    return ModelError(
        f'"{path}": the model "{model_path}" gave no usable output for this image (NaN or infinity); '
        "its file may be damaged"
    )


@dataclass(frozen=True)
class _RunPlan:
    """The settings one prediction run works by (`Classifier._plan`)."""

    model_spec: InputSpec
    thresholds: CheckThresholds | None  # None: the image checks are off
    modality: Classifier | None
    modality_spec: InputSpec | None


# A file as the caller named it: `predict_file` keeps the caller's string, `predict_files` a Path.
_PathLike = TypeVar("_PathLike", bound=str | Path)
_T = TypeVar("_T")


def _present(value: _T | None) -> _T:
    """`value`, which the run's plan guarantees is there (the checks on: their statistics)."""
    assert value is not None
    return value


@dataclass(frozen=True)
class _ReadImage:
    """One file as the readers leave it for the models: everything but the model calls."""

    fitted: np.ndarray
    source_size: tuple[int, int]
    stats: dict[str, float] | None
    modality_input: np.ndarray | None
    picture: np.ndarray | None = None  # the decoded picture, when the prediction keeps it
    field_of_view: tuple[float, float, float, float] | None = None  # `Prediction.field_of_view`


def _square_around(circle, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The square the field-of-view fit cuts out (`fov.standardise_field_of_view`), as fractions
    of the picture's (width, height)."""
    width, height = size
    return ((circle.cx + 0.5 - circle.r) / width, (circle.cy + 0.5 - circle.radius_y) / height,
            (circle.cx + 0.5 + circle.r) / width, (circle.cy + 0.5 + circle.radius_y) / height)


# The shipped classifier for each modality, so that an image given to the wrong one can name
# the model that reads it.
_SHIPPED_MODELS = {"fundus": ("keras_model.h5",), "oct": ("oct", "keras_model.h5")}


def shipped_model_for(modality: str) -> str | None:
    """The shipped model that reads `modality`, as a path to show (relative to the install,
    "models/oct/keras_model.h5"), or None when it is not installed."""
    parts = _SHIPPED_MODELS.get(modality)
    if parts is None:
        return None
    path = models_dir().joinpath(*parts)
    if not model_available(path):
        return None
    try:
        return path.relative_to(bundle_root()).as_posix()
    except ValueError:
        return str(path)


def needs_labels(model_path: str | Path) -> bool:
    """True for a model file with neither labels.txt nor a sidecar beside it: before it can be
    opened, the user has to say what its classes are."""
    path = Path(model_path)
    return not labels_path_for(path).exists() and not sidecar_path_for(path).exists()


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """The shared classifier for the default model, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Classifier()
        return _default


def predict_class(image_path: str | Path) -> Prediction:
    """Classify one image with the default model: the function the GUI's Browse button calls.

    Returns the predicted class, its probability, every class's probability in order, the
    processed image and the model it came from. The result is model output, not a diagnosis.
    """
    return default_classifier().predict_file(image_path)
