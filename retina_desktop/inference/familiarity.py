"""The "unfamiliar image" flag: how far an image lies from a model's training images, measured
in the model's own feature space.

Features are the global average of the feature maps that heatmaps read (the layer Grad-CAM
targets, `heatmaps.find_target_layer`): the input of the model's dense head, 1280 numbers for
EfficientNet-Lite0. Both backends give them (the compiled LiteRT model outputs those maps for
its heatmaps, Keras through the same capture), so the flag is the same on either.

The distance is a nearest-neighbour distance (Sun et al. 2022, "Out-of-distribution detection
with deep nearest neighbors"): features scaled to unit length, projected on the first
principal components of the training images' (to keep the stored file small), and the distance
to the k-th nearest training image. Chosen on the validation split over Mahalanobis distances
(class-conditional or not, with a shrunk covariance, on raw or unit-length features): on the
fundus model's validation images it ranks the model's errors best (AUC 0.64 against 0.53 to
0.64), and it assumes no shape for the training distribution. The unit length matters most: the
features' size tracks image contrast more than content.

The threshold is a percentile of the validation images' distances (chosen when the record is
fitted, `training/classifier/familiarity.py`): about that share of in-distribution images is flagged.

Stored beside the model as `<stem>.familiarity.npz` (numbers only: loaded with
allow_pickle=False, every array's shape and dtype checked), with the model file's SHA-256 so a
record fitted for another model is refused. The sidecar's "familiarity" entry holds the
threshold in force and the measured figures. The flag is a warning beside the answer, never a
replacement for it (`records.Answer`).

Numpy only: the packaged app and the training package both use it.
"""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "retina-desktop-familiarity/1"
SUFFIX = ".familiarity.npz"
# Principal components kept of the unit-length features (the stored training points are n x
# this many float32 numbers: 4,542 fundus training images take 2.3 MB).
COMPONENTS = 128
# Which neighbour's distance counts: the 10th, so that one odd training image near a new image
# does not make it familiar.
NEIGHBOURS = 10
# The share of validation images left unflagged: the 97.5th percentile flags about 2.5% of
# in-distribution images (the target is at most 5%).
PERCENTILE = 97.5
# A file of a few MB at most; this bounds what is read from a file that only claims to be one.
MAX_BYTES = 64 << 20


class FamiliarityError(ValueError):
    """A familiarity file that cannot be used; the message is one line naming the file."""


def path_for(model_path: str | Path) -> Path:
    """Where a model's familiarity record lies: `keras_model.h5` -> `keras_model.familiarity.npz`."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + SUFFIX)


def pooled_features(feature_maps: np.ndarray) -> np.ndarray:
    """(n, h, w, k) feature maps -> (n, k) float64 features: the global average pool, the same
    operation the model's head starts with."""
    maps = np.asarray(feature_maps)
    if maps.ndim != 4:
        raise ValueError(f"expected (n, h, w, k) feature maps, got shape {maps.shape}")
    return maps.astype(np.float64).mean(axis=(1, 2))


def unit_length(features: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a row of zeros stays zero)."""
    x = np.asarray(features, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Familiarity:
    """The training images in the model's feature space and the distance above which an image
    is unfamiliar."""

    mean: np.ndarray  # (d,), of the unit-length training features
    projection: np.ndarray  # (d, m), orthonormal columns: the first principal components
    points: np.ndarray  # (n, m) float32, the training images projected
    neighbours: int = NEIGHBOURS
    threshold: float = float("inf")
    model_sha256: str = ""

    @property
    def dimension(self) -> int:
        return int(self.mean.shape[0])

    @functools.cached_property
    def _points64(self) -> tuple[np.ndarray, np.ndarray]:
        """The training points in float64 and their squared lengths, made once per record
        (each prediction used to copy all n of them)."""
        points = self.points.astype(np.float64)
        return points, np.einsum("ij,ij->i", points, points)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        *,
        components: int = COMPONENTS,
        neighbours: int = NEIGHBOURS,
        model_sha256: str = "",
    ) -> Familiarity:
        """Fit on training features (n, d). The threshold is left at infinity: choose it on
        validation features with `with_threshold(choose_threshold(...))`."""
        x = unit_length(features)
        if x.ndim != 2 or len(x) <= neighbours or x.shape[1] < 2:
            raise ValueError(f"expected (n, d) features with more than {neighbours} images, got shape {x.shape}")
        mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        m = int(max(1, min(components, vt.shape[0], x.shape[1])))
        projection = vt[:m].T.copy()
        points = ((x - mean) @ projection).astype(np.float32)
        return cls(mean, projection, points, int(neighbours), model_sha256=model_sha256)

    def with_threshold(self, threshold: float) -> Familiarity:
        return Familiarity(
            self.mean, self.projection, self.points, self.neighbours, float(threshold), self.model_sha256
        )

    def distance(self, features: np.ndarray, *, chunk: int = 256) -> np.ndarray:
        """Each image's distance (n,) from the training images: to its `neighbours`-th nearest
        training image, in the projected unit-length feature space (0 to 2)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != self.dimension:
            raise ValueError(f"features have {x.shape[-1]} values; the familiarity record expects {self.dimension}")
        query = (unit_length(x) - self.mean) @ self.projection
        points, squared_points = self._points64
        out = np.empty(len(query))
        for start in range(0, len(query), chunk):
            q = query[start : start + chunk]
            squared = np.einsum("ij,ij->i", q, q)[:, None] + squared_points[None] - 2.0 * q @ points.T
            kth = np.partition(squared, self.neighbours - 1, axis=1)[:, self.neighbours - 1]
            out[start : start + chunk] = np.sqrt(np.maximum(kth, 0.0))
        return out

    def is_unfamiliar(self, distances: np.ndarray | float) -> np.ndarray:
        """Whether each distance lies above the threshold."""
        return np.asarray(distances) > self.threshold

    # -- storage ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the record atomically (numbers and two short strings; no pickles)."""
        from retina_desktop.core.atomic import atomic_save

        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "model_sha256": np.array(self.model_sha256),
            "mean": self.mean.astype(np.float64),
            "projection": self.projection.astype(np.float32),
            "points": self.points.astype(np.float32),
            "neighbours": np.array(self.neighbours, dtype=np.int64),
            "threshold": np.array(self.threshold, dtype=np.float64),
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a name
                np.savez_compressed(handle, **arrays)

        atomic_save(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> Familiarity:
        """Read and validate a record; raises `FamiliarityError` with a one-line message."""
        path = Path(path)

        def bad(why: str) -> FamiliarityError:
            return FamiliarityError(f'Familiarity file "{path}" is not usable: {why}')

        try:
            if path.stat().st_size > MAX_BYTES:
                raise bad(f"it is larger than {MAX_BYTES >> 20} MB")
            with np.load(path, allow_pickle=False) as stored:
                data = {name: stored[name] for name in stored.files}
        except FamiliarityError:
            raise
        except FileNotFoundError as err:
            raise FamiliarityError(f'Familiarity file not found: "{path}"') from err
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise bad(f"not a numpy .npz archive of plain arrays ({_first_line(err)})") from err
        if _text(data.get("format")) != FORMAT:
            raise bad(f'its format is not "{FORMAT}"')
        needed = ("mean", "projection", "points", "neighbours", "threshold")
        missing = [name for name in needed if name not in data]
        if missing:
            raise bad(f"it lacks {', '.join(missing)}")
        for name in ("mean", "projection", "points", "threshold"):
            if data[name].dtype.kind != "f":
                raise bad(f"{name} holds {data[name].dtype} values, not floating-point numbers")
            if name != "threshold" and not np.isfinite(data[name]).all():
                raise bad(f"{name} holds values that are not finite")
        mean, projection, points, neighbours = data["mean"], data["projection"], data["points"], data["neighbours"]
        if mean.ndim != 1 or mean.shape[0] < 2:
            raise bad(f"mean has shape {mean.shape}, expected (features,)")
        d = mean.shape[0]
        if projection.ndim != 2 or projection.shape[0] != d or not 1 <= projection.shape[1] <= d:
            raise bad(f"projection has shape {projection.shape}, expected ({d}, components)")
        if neighbours.shape != () or neighbours.dtype.kind not in "iu" or int(neighbours) < 1:
            raise bad("neighbours must be one whole number of at least 1")
        if points.ndim != 2 or points.shape[1] != projection.shape[1] or points.shape[0] < int(neighbours):
            raise bad(f"points has shape {points.shape}, expected (at least {int(neighbours)}, {projection.shape[1]})")
        if data["threshold"].shape != () or np.isnan(data["threshold"]) or float(data["threshold"]) <= 0:
            raise bad("threshold must be one number above 0")
        return cls(
            mean=mean.astype(np.float64),
            projection=projection.astype(np.float64),
            points=points.astype(np.float32),
            neighbours=int(neighbours),
            threshold=float(data["threshold"]),
            model_sha256=_text(data.get("model_sha256")),
        )


def choose_threshold(val_distances: np.ndarray, percentile: float = PERCENTILE) -> float:
    """The distance above which an image is flagged: `percentile` of the validation distances."""
    values = np.asarray(val_distances, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        raise ValueError("no validation distances to choose a threshold from")
    return float(np.percentile(values, percentile))


def load_for_model(
    model_path: str | Path, model_sha256: str | None, sidecar_entry: dict[str, Any] | None = None
) -> tuple[Familiarity | None, str]:
    """The familiarity record beside `model_path`, or (None, why not): "" when there is none,
    else a one-line message naming the file. The sidecar's threshold, when it gives one,
    is the one in force. `model_sha256` None skips the check that the record is this model's."""
    path = path_for(model_path)
    if not path.exists():
        return None, ""
    try:
        record = Familiarity.load(path)
    except FamiliarityError as err:
        return None, f"{err}; no unfamiliar-image flag"
    if model_sha256 and record.model_sha256 and record.model_sha256 != model_sha256:
        name = Path(model_path).name
        return None, f'Familiarity file "{path}" was fitted for another version of "{name}"; no unfamiliar-image flag'
    threshold = (sidecar_entry or {}).get("threshold")
    if isinstance(threshold, int | float) and not isinstance(threshold, bool) and threshold > 0:
        record = record.with_threshold(float(threshold))
    return record, ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    array = np.asarray(value)
    return str(array.item()) if array.shape == () and array.dtype.kind == "U" else ""


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:120]
