"""Where the heatmaps lie: the share of Grad-CAM mass inside the fundus field of view
(`heatmap_in_fov`). Evidence on the black frame or the border is a shortcut, so the figure
belongs in the card beside the accuracy figures."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.evaluation.config import HEATMAP_IMAGES

HEATMAP_SEED = 0


def heatmap_mass_inside(heatmap: np.ndarray, inside: np.ndarray) -> float:
    """The share of a heatmap's mass on the pixels where `inside` is True (NaN when empty)."""
    heatmap = np.nan_to_num(np.asarray(heatmap, dtype=np.float64))
    total = float(heatmap.sum())
    return float(heatmap[np.asarray(inside, dtype=bool)].sum() / total) if total > 0 else float("nan")


@dataclass(frozen=True)
class ShareSummary:
    """How much of the heatmaps' mass lies inside the field of view, over the images measured."""

    measured: int
    median: float | None
    p10: float | None

    def to_dict(self) -> dict[str, Any]:
        """As metrics.json has it: these three keys in this order."""
        return {"measured": self.measured, "median": self.median, "p10": self.p10}


def summarise_shares(shares: Sequence[float]) -> ShareSummary:
    """Median and 10th percentile of per-image shares, empty heatmaps (NaN) left out."""
    values = np.asarray(shares, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return ShareSummary(measured=0, median=None, p10=None)
    return ShareSummary(
        measured=len(values),
        median=round(float(np.median(values)), 4),
        p10=round(float(np.percentile(values, 10)), 4),
    )


def heatmap_in_fov(
    classifier,
    images: np.ndarray,
    probs: np.ndarray,
    reported: np.ndarray,
    count: int = HEATMAP_IMAGES,
    *,
    seed: int = HEATMAP_SEED,
    progress: bool = True,
) -> dict[str, Any]:
    """The share of Grad-CAM mass inside the fundus field of view, over `count` images drawn
    with `seed`.

    Each heatmap is the app's (`heatmaps.heatmap_for`) for the class the app reports, on the
    image as the model saw it; the retina is found on that same image (its fitted field of view,
    or the region unlike the frame where a camera's cut leaves no rim to fit). Images with
    neither are skipped and counted, never counted as "inside".
    """
    from tqdm import tqdm

    from retina_desktop.core.prediction import Prediction
    from retina_desktop.imaging.fov import retina_mask
    from retina_desktop.inference.heatmaps import heatmap_for

    classes = classifier.bundle().classes
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
    shares: list[float] = []
    seconds: list[float] = []
    no_fov = 0
    for i in tqdm(pick, desc="heatmaps", unit="img", disable=not progress, leave=False):
        image = images[i]
        inside = retina_mask(image)
        if inside is None:
            no_fov += 1
            continue
        prediction = Prediction(
            file=f"#{i}",
            label=classes[int(reported[i])],
            confidence=float(probs[i, int(reported[i])]),
            probabilities={name: float(p) for name, p in zip(classes, probs[i])},
            processed_image=image,
        )
        start = time.perf_counter()
        heatmap = heatmap_for(classifier, prediction)
        seconds.append(time.perf_counter() - start)
        shares.append(heatmap_mass_inside(heatmap, inside))
    summary = summarise_shares(shares)
    return {
        "images": len(pick),
        "seed": seed,
        "skipped_no_fov": no_fov,
        "skipped_empty_heatmap": len(shares) - summary.measured,
        **summary.to_dict(),
        # The median, because the first image pays for tracing the Grad-CAM function.
        "seconds_per_image": round(float(np.median(seconds)), 4) if seconds else None,
        "seconds_total": round(float(np.sum(seconds)), 2),
    }


def heatmap_figure(classifier, images, calibrated, reported, count: int, quiet: bool) -> dict[str, Any]:
    """`heatmap_in_fov`, or why it could not be measured (the run's other figures still stand)."""
    try:
        return heatmap_in_fov(classifier, images, calibrated, reported, count, progress=not quiet)
    except ImportError as err:  # retina_desktop.imaging.fov not installed: say so rather than fail the run
        return {"skipped": f"no field-of-view finder ({err})"}
    except ValueError as err:  # a model Grad-CAM cannot explain
        return {"skipped": f"no heatmap for this model ({err})"}
