"""Knowing when not to answer: is this image of the model's kind, and is it fit to be judged?

Two kinds of evidence, each with a plain reason when it fails:

- measured statistics of the image (size, brightness of the field of view, overexposure,
  sharpness, how much of the frame the field of view fills), with thresholds fitted on the
  model's validation images and stored in its sidecar (`checks`);
- a learned check: a small modality classifier (fundus / OCT / other) trained on our data
  against non-retinal images, shipped in models/modality/.

`measure` is pure numpy on a small copy of the image, so the statistics cost a few
milliseconds; the modality classifier is one small compiled call.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from retina_desktop.core.model_card import CheckThresholds
from retina_desktop.core.prediction import CheckResult
from retina_desktop.core.wording import MODALITY_NAMES
from retina_desktop.imaging.fov import UNSEARCHED

# The working size for statistics: small enough to be fast, fixed so figures are comparable.
WORK_SIZE = 160
# A pixel whose brightest channel is below this (0-255) is background, outside the fundus
# camera's circle. The brightest channel, not luminance: a dark fundus is still red.
BACKGROUND_LEVEL = 10
# Mean spread between the brightest and darkest channel inside the field of view below which an
# image is greyscale (0 exactly for a greyscale source; the palest colour photograph among 400
# of fundus4's measured 6.4). A fundus model read a 16-bit greyscale copy of a "normal 0.992"
# photograph as diabetic retinopathy at 0.959: colour is evidence it cannot do without.
GREYSCALE_BELOW = 2.0


def measure(image: Image.Image, fit: str = "", circle=UNSEARCHED) -> dict[str, float]:
    """Colour, brightness, saturation, sharpness and field of view of an RGB image, at
    WORK_SIZE, as the model sees it: a model that standardises the field of view (`fit` "fov")
    is judged on the standardised picture, so a complete oval from a stretched photograph or a
    raw camera frame wider than its disc is measured like any other camera's circle. `circle`:
    the field of view when the caller has searched for it already (None: there is none)."""
    small = None
    if fit == "fov":
        from retina_desktop.imaging.fov import standardise_field_of_view

        small = standardise_field_of_view(image, (WORK_SIZE, WORK_SIZE), circle=circle,
                                          resample=Image.Resampling.BILINEAR)
    if small is None:
        small = np.asarray(image.resize((WORK_SIZE, WORK_SIZE), Image.Resampling.BILINEAR))
    luminance = small.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # Pairwise maxima: numpy's max over a length-3 last axis is a hundred times slower.
    brightest = np.maximum(np.maximum(small[..., 0], small[..., 1]), small[..., 2])
    fov = brightest > BACKGROUND_LEVEL
    fov_fraction = float(fov.mean())
    inside = luminance[fov] if fov.any() else luminance.ravel()
    # The 5-point Laplacian, kept off the field-of-view border where the circle's edge would
    # count as detail.
    lap = (
        -4 * luminance[1:-1, 1:-1]
        + luminance[:-2, 1:-1]
        + luminance[2:, 1:-1]
        + luminance[1:-1, :-2]
        + luminance[1:-1, 2:]
    )
    interior = fov[1:-1, 1:-1] & fov[:-2, 1:-1] & fov[2:, 1:-1] & fov[1:-1, :-2] & fov[1:-1, 2:]
    lap_inside = lap[interior] if interior.sum() > 100 else lap.ravel()
    darkest = np.minimum(np.minimum(small[..., 0], small[..., 1]), small[..., 2])
    spread = (brightest - darkest)[fov] if fov.any() else (brightest - darkest).ravel()
    return {
        "colour": float(spread.mean()),
        "brightness": float(inside.mean()),
        "saturated": float((inside >= 250).mean()),
        "sharpness": float(lap_inside.var()) * exposure_gain(float(inside.mean())) ** 2,
        "field_of_view": fov_fraction,
    }


# Sharpness is reported as if the field of view's mean luminance were this: the Laplacian
# scales with exposure, so a photograph taken a stop darker read as out of focus (15 of 100 test
# photographs darkened by 0.6 were refused so, though every edge in them was as sharp).
STANDARD_BRIGHTNESS = 100.0


def exposure_gain(brightness: float) -> float:
    """The gain that brings a field of view of mean luminance `brightness` to STANDARD_BRIGHTNESS
    (at most 25: a black image is refused as too dark, not as sharp noise)."""
    return min(STANDARD_BRIGHTNESS / max(brightness, 1e-6), 25.0)


def distinct(value: float, limit: float, decimals: int, *, percent: bool = False) -> tuple[str, str]:
    """`value` and `limit` printed with as many decimals as it takes for them to differ (up to
    four more than asked), so a refusal never reads "34; needs 34"."""
    scale, suffix = (100.0, "%") if percent else (1.0, "")
    for places in range(decimals, decimals + 5):
        shown = f"{value * scale:.{places}f}", f"{limit * scale:.{places}f}"
        if shown[0] != shown[1]:
            break
    return shown[0] + suffix, shown[1] + suffix


def judge(
    stats: dict[str, float],
    source_size: tuple[int, int],
    thresholds: CheckThresholds,
    modality: str,
    modality_probs: dict[str, float] | None,
) -> CheckResult:
    """Turn measurements into a verdict with one plain reason per failed check."""
    t = thresholds
    reasons: list[str] = []
    scores = dict(stats)
    width, height = source_size
    if min(width, height) < t.min_side:
        reasons.append(
            f"image too small to judge ({width} x {height} pixels; needs at least {t.min_side} on the short side)"
        )
    looks_like = ""
    if modality_probs:
        scores.update({f"p_{k}": v for k, v in modality_probs.items()})
        modality_reasons = _modality_reasons(modality, modality_probs, t.min_modality_probability)
        reasons += modality_reasons
        looks_like = _other_modality(modality, modality_probs) if modality_reasons else ""
    if stats["brightness"] < t.min_brightness:
        value, limit = distinct(stats["brightness"], t.min_brightness, 0)
        reasons.append(f"too dark to judge (mean brightness {value}; needs {limit} or more)")
    if stats["saturated"] > t.max_saturated:
        value, limit = distinct(stats["saturated"], t.max_saturated, 0, percent=True)
        reasons.append(f"overexposed ({value} of the image is saturated; at most {limit})")
    if stats["sharpness"] < t.min_sharpness:
        value, limit = distinct(stats["sharpness"], t.min_sharpness, 1)
        reasons.append(f"out of focus (sharpness {value}; needs {limit} or more)")
    if modality == "fundus" and stats.get("colour", GREYSCALE_BELOW) < GREYSCALE_BELOW:
        reasons.append("greyscale image: the fundus model needs a colour photograph")
    if modality == "fundus" and stats["field_of_view"] < t.min_field_of_view:
        value, limit = distinct(stats["field_of_view"], t.min_field_of_view, 0, percent=True)
        reasons.append(f"most of the field of view is missing (it fills {value} of the frame; needs {limit})")
    return CheckResult(passed=not reasons, reasons=reasons, scores=scores, looks_like=looks_like)


_NAMES = MODALITY_NAMES
_PLURALS = {"fundus": "colour fundus photographs", "oct": "OCT B-scans"}


def _other_modality(modality: str, probs: dict[str, float]) -> str:
    """The other retinal modality when the image most looks like it (an OCT scan given to the
    fundus model): then a model that reads it can be named. Else ""."""
    best = max(probs, key=probs.__getitem__)
    return best if modality in ("fundus", "oct") and best in ("fundus", "oct") and best != modality else ""


def _modality_reasons(modality: str, probs: dict[str, float], minimum: float) -> list[str]:
    best = max(probs, key=probs.__getitem__)
    if modality in ("fundus", "oct"):
        if probs.get(modality, 0.0) >= minimum:
            return []
        if best in ("fundus", "oct") and best != modality:
            return [f"looks like {_NAMES[best]} ({probs[best]:.0%}), but this model reads {_PLURALS[modality]}"]
        if best == modality:
            # Its own modality is the likeliest, yet not likely enough: say that, never "looks
            # like a fundus photograph, but this model reads fundus photographs".
            value, limit = distinct(probs[modality], minimum, 0, percent=True)
            return [f"not clearly {_NAMES[modality]} (the image check rates it {value} likely; needs {limit})"]
        return [
            f"does not look like {_NAMES[modality]} "
            f"(the image check rates it {probs.get('other', 0):.0%} non-retinal)"
        ]
    # A model of unknown modality (a Teachable Machine export): only "is it retinal at all".
    if probs.get("other", 0.0) > 1 - minimum:
        return [f"does not look like a retinal image (the image check rates it {probs['other']:.0%} non-retinal)"]
    return []
