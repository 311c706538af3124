"""The model card: the JSON sidecar stored beside a model file (`ModelMetadata`), the input it
expects (`InputSpec`) and its thresholded decision rule (`OperatingPoint`), each validated when
read so a malformed sidecar is refused with a message naming the field.

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, get_args

from retina_desktop.core.card_schema import ClassifierSidecar, Fit, Scaling, validated
from retina_desktop.core.wording import decimal, display_name

# "fov": find the fundus circle, centre it in a square of its diameter, black outside (fov.py);
# every camera's photograph is then framed alike.
FIT_MODES: tuple[str, ...] = get_args(Fit)
# How pixel values reach the model: "none" = 0..255 floats (the model rescales inside itself,
# which is how our own models keep preprocessing in one place), "tm" = x/127.5 - 1 (Teachable
# Machine and MobileNet), "unit" = x/255.
SCALINGS: tuple[str, ...] = get_args(Scaling)


@dataclass(frozen=True)
class OperatingPoint:
    """A model's thresholded decision rule: report `positive_class` when its calibrated
    probability reaches `threshold` (chosen on the validation split, as `chosen_on` says).

    Two kinds. A two-class model's *operating* threshold (the OCT model's DME) reports the other
    class below it. A many-class model's *referral* threshold (the fundus model's diabetic
    retinopathy, chosen for sensitivity to referable disease) reports the positive class with
    "refer" even when another class is more probable, and below it the most probable of the
    other classes: a screening answer is a referral decision, not an argmax.
    """

    positive_class: str
    negative_class: str  # "" for a referral rule: below it, the most probable other class
    threshold: float
    chosen_on: str = ""
    rule: str = "operating"  # or "referral"

    @property
    def referral(self) -> bool:
        return self.rule == "referral"

    @property
    def threshold_name(self) -> str:
        return "referral threshold" if self.referral else "operating threshold"

    def rule_text(self) -> str:
        """"reports DME when p(DME) is 0.151 or more, else NO DME (threshold chosen on ...)"."""
        chosen = f" (threshold chosen on {self.chosen_on})" if self.chosen_on else ""
        positive = display_name(self.positive_class)
        if self.referral:
            return (
                f"reports {positive}: refer when p({positive}) is {decimal(self.threshold)} or more, even when "
                f"another class is more probable, else the most probable other class{chosen}"
            )
        return (
            f"reports {positive} when p({positive}) is "
            f"{decimal(self.threshold)} or more, else {display_name(self.negative_class)}{chosen}"
        )


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
    # {"positive_class", "threshold", "chosen_on"}: the positive class is reported when its
    # probability reaches the threshold instead of when it is the most probable. For two-class
    # models an operating point chosen on the validation split for a target specificity; for
    # more classes a referral threshold ("rule": "referral") chosen for sensitivity.
    decision: dict[str, Any] = field(default_factory=dict)
    # The unfamiliar-image flag (familiarity.py): {"file", "threshold", "percentile", figures,
    # "command"}. The fitted numbers are in the file beside the model; the threshold here is the
    # one in force. Empty: the model has no flag.
    familiarity: dict[str, Any] = field(default_factory=dict)

    def operating_point(self) -> OperatingPoint | None:
        """The thresholded decision rule from `decision`, or None when the top class is reported."""
        positive = self.decision.get("positive_class")
        if positive not in self.classes or "threshold" not in self.decision or len(self.classes) < 2:
            return None
        chosen = str(self.decision.get("chosen_on", "") or "")
        threshold = float(self.decision["threshold"])
        if len(self.classes) == 2 and self.decision.get("rule", "operating") == "operating":
            negative = self.classes[1 - self.classes.index(positive)]
            return OperatingPoint(positive, negative, threshold, chosen)
        return OperatingPoint(positive, "", threshold, chosen, rule="referral")

    def label_for(self, probabilities: list[float]) -> int:
        """Index of the class to report for these (calibrated) probabilities."""
        point = self.operating_point()
        ranked = list(range(len(probabilities)))
        if point is not None:
            index = self.classes.index(point.positive_class)
            if probabilities[index] >= point.threshold:
                return index
            ranked = [i for i in ranked if i != index]
        return max(ranked, key=probabilities.__getitem__)

    def decision_text(self) -> str:
        """How this model turns probabilities into an answer, in one line (for `info`, Settings)."""
        point = self.operating_point()
        if point is None:
            return "reports the class with the highest probability"
        return point.rule_text()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ModelMetadata:
        """Metadata from a parsed sidecar, every value checked against the declared schema
        (`card_schema.ClassifierSidecar`) at load, so that a bad value is one error naming its
        key rather than a failure at the first prediction. Raises ValueError naming the key;
        unknown top-level keys are ignored."""
        validated(data, ClassifierSidecar)
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "version" in values:
            values["version"] = str(values["version"])
        values["classes"] = [str(c) for c in values.get("classes", [])]
        values["input"] = InputSpec(**values.get("input", {}))
        return cls(**values)


# What the image checks compare against (imaging/checks.py), stored in the sidecar's "checks.thresholds".
@dataclass(frozen=True)
class CheckThresholds:
    """Limits for one modality. Defaults are generous; fitted values come from the sidecar."""

    min_side: int = 128
    min_brightness: float = 25.0  # mean luminance inside the field of view
    max_saturated: float = 0.25  # fraction of field-of-view pixels at 250 or more
    min_sharpness: float = 2.0  # variance of the Laplacian of the luminance at a standard exposure
    min_field_of_view: float = 0.25  # fraction of the frame that is not background (fundus)
    min_modality_probability: float = 0.5  # the modality classifier's belief in our modality

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CheckThresholds:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
