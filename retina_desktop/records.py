"""Records shared by the service, the GUI, the CLI and training.

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# "fov": find the fundus circle, centre it in a square of its diameter, black outside (fov.py);
# every camera's photograph is then framed alike.
FIT_MODES = ("crop", "pad", "stretch", "fov")
# How pixel values reach the model: "none" = 0..255 floats (the model rescales inside itself,
# which is how our own models keep preprocessing in one place), "tm" = x/127.5 - 1 (Teachable
# Machine and MobileNet), "unit" = x/255.
SCALINGS = ("none", "tm", "unit")
MODALITIES = ("fundus", "oct", "unknown")


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: size, how an image is fitted to it, and pixel scaling."""

    height: int = 224
    width: int = 224
    fit: str = "crop"
    scaling: str = "tm"

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, not {self.fit!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, not {self.scaling!r}")


@dataclass
class ModelMetadata:
    """The JSON sidecar stored beside a model file (`<model stem>.json`)."""

    classes: list[str]
    input: InputSpec = field(default_factory=InputSpec)
    modality: str = "unknown"
    name: str = "unnamed model"
    version: str = "0"
    # Softmax temperature fitted on the validation split; 1.0 means "not calibrated".
    temperature: float = 1.0
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Fitted thresholds of the image checks; empty means "use the defaults".
    checks: dict[str, Any] = field(default_factory=dict)
    # For two-class models: {"positive_class", "threshold", "chosen_on"}. The positive class is
    # reported when its probability reaches the threshold (an operating point chosen on the
    # validation split for a target specificity) instead of when it is the larger of the two.
    decision: dict[str, Any] = field(default_factory=dict)

    def label_for(self, probabilities: list[float]) -> int:
        """Index of the class to report for these (calibrated) probabilities."""
        positive = self.decision.get("positive_class")
        if len(self.classes) == 2 and positive in self.classes and "threshold" in self.decision:
            index = self.classes.index(positive)
            return index if probabilities[index] >= float(self.decision["threshold"]) else 1 - index
        return max(range(len(probabilities)), key=probabilities.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ModelMetadata:
        """Metadata from a parsed sidecar, every value type-checked here, at load, so that a
        bad value is one error naming its key rather than a failure at the first prediction.
        Raises ValueError naming the key; unknown top-level keys are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {_json_type(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("provenance", "metrics", "checks", "decision"):
            if not isinstance(values.get(key, {}), dict):
                raise ValueError(f'"{key}" must be an object, not {_json_type(values[key])}')
        for key in ("modality", "name"):
            if key in values and not isinstance(values[key], str):
                raise ValueError(f'"{key}" must be a string, not {_json_type(values[key])}')
        if "version" in values:
            if not isinstance(values["version"], str | int) or isinstance(values["version"], bool):
                raise ValueError(f'"version" must be a string, not {_json_type(values["version"])}')
            values["version"] = str(values["version"])
        classes = values.get("classes", [])
        if not isinstance(classes, list) or not all(isinstance(c, str | int) for c in classes):
            raise ValueError('"classes" must be a list of class names')
        values["classes"] = [str(c) for c in classes]
        if "temperature" in values and not (_is_number(values["temperature"]) and values["temperature"] > 0):
            # A temperature of 0 divides by zero and a negative one reverses the ranking.
            raise ValueError(f'"temperature" must be a number above 0, not {_shown(values["temperature"])}')
        thresholds = values.get("checks", {}).get("thresholds", {})
        if not isinstance(thresholds, dict):
            raise ValueError(f'"checks.thresholds" must be an object of numbers, not {_json_type(thresholds)}')
        for name, value in thresholds.items():
            if not _is_number(value):
                raise ValueError(f'"checks.thresholds.{name}" must be a number, not {_shown(value)}')
        decision = values.get("decision", {})
        if "positive_class" in decision and not isinstance(decision["positive_class"], str):
            raise ValueError(
                f'"decision.positive_class" must be a class name, not {_shown(decision["positive_class"])}'
            )
        threshold = decision.get("threshold", 0.5)
        if not (_is_number(threshold) and 0 <= threshold <= 1):
            raise ValueError(f'"decision.threshold" must be a probability from 0 to 1, not {_shown(threshold)}')
        values["input"] = _input_spec(values.get("input", {}))
        return cls(**values)


def _input_spec(data: Any) -> InputSpec:
    if not isinstance(data, dict):
        raise ValueError(f'"input" must be an object, not {_json_type(data)}')
    known = {f.name for f in dataclasses.fields(InputSpec)}
    for key, value in data.items():
        if key not in known:
            raise ValueError(f'"input.{key}" is not a setting of the input (expected {", ".join(sorted(known))})')
        if key in ("height", "width") and not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            raise ValueError(f'"input.{key}" must be a whole number of pixels, not {_shown(value)}')
        if key == "fit" and value not in FIT_MODES:
            raise ValueError(f'"input.fit" must be one of {", ".join(FIT_MODES)}, not {_shown(value)}')
        if key == "scaling" and value not in SCALINGS:
            raise ValueError(f'"input.scaling" must be one of {", ".join(SCALINGS)}, not {_shown(value)}')
    return InputSpec(**data)


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but `true` is not a number in a sidecar.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _shown(value: Any) -> str:
    """A JSON value for a message, cut short: the message names the value, it does not hold it."""
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{_json_type(value)} ({text[:30]}...)"


@dataclass(frozen=True)
class CheckResult:
    """Whether an image is fit to be judged by the model, with one plain reason per problem."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Prediction:
    """One image's model output. Worded by callers as model output, never as a diagnosis."""

    file: str
    label: str
    confidence: float
    # Every class's probability, in the model's class order.
    probabilities: dict[str, float]
    # The image as the model saw it (uint8, height x width x 3), for display and heatmaps.
    processed_image: np.ndarray = field(repr=False)
    model_name: str = ""
    model_path: str = ""
    # The image checks' verdict; None when checks were turned off.
    checks: CheckResult | None = None

    @property
    def fit_to_judge(self) -> bool:
        return self.checks is None or self.checks.passed

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            "file": self.file,
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "model": self.model_name,
        }
        if self.checks is not None:
            out["checks"] = self.checks.to_json_dict()
        return out
