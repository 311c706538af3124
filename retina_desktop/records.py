"""Records shared by the service, the GUI, the CLI and training.

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIT_MODES = ("crop", "pad", "stretch")
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
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["input"] = InputSpec(**values.get("input", {}))
        values["classes"] = [str(c) for c in values.get("classes", [])]
        return cls(**values)


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
