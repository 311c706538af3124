"""The words every answer shares: class names as people read them, thresholds and
probabilities written so their order shows, what each retinal modality is called.

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations


def display_name(class_name: str) -> str:
    """A class name as people read it: "diabetic_retinopathy" -> "diabetic retinopathy"."""
    return class_name.replace("_", " ").strip()


# What an image of each retinal modality is called, in a sentence.
MODALITY_NAMES = {"fundus": "a colour fundus photograph", "oct": "an OCT B-scan"}


def decimal(value: float) -> str:
    """A threshold as written in texts: three decimals (0.150849 -> "0.151")."""
    return f"{value:.3f}".rstrip("0").rstrip(".") if value not in (0, 1) else f"{value:g}"


def apart(value: float, bound: float, *, percent: bool) -> tuple[str, str]:
    """`value` and `bound` written with the fewest decimals (from 0 for percentages, 2 for
    probabilities) that keep their order visible: p = 0.1505 against a threshold of 0.150849
    is written 0.1505 and 0.1508, never "0.15 below 0.15"."""
    scale, start, unit = (100.0, 0, "%") if percent else (1.0, 2, "")
    for places in range(start, start + 6):
        a, b = round(value * scale, places), round(bound * scale, places)
        if (a < b) == (value < bound) and (a > b) == (value > bound):
            break
    return f"{value * scale:.{places}f}{unit}", f"{bound * scale:.{places}f}{unit}"
