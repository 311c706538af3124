"""Records shared by the service, the GUI, the CLI and training, and the one wording rule for
an answer.

`Answer` (from `Prediction.answer()`) is the only place that decides what an answer says: the
label is the model's decision (for a two-class model with an operating threshold, the positive
class when its probability reaches the threshold, and the text names the threshold), an answer
whose label has less probability than the unsure level is marked unsure, and an image that
failed its checks has no label at all. The GUI, the CLI's text and JSON, the batch CSV and the
PDF report all read it, so they cannot drift apart.

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
# How a stored threshold decides (OperatingPoint): a two-class operating point, or a referral.
DECISION_RULES = ("operating", "referral")
# Below this probability of its label an answer is called unsure (the user's setting overrides it).
UNSURE_BELOW = 0.6


def display_name(class_name: str) -> str:
    """A class name as people read it: "diabetic_retinopathy" -> "diabetic retinopathy"."""
    return class_name.replace("_", " ").strip()


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
                f"reports {positive}: refer when p({positive}) is {_decimal(self.threshold)} or more, even when "
                f"another class is more probable, else the most probable other class{chosen}"
            )
        return (
            f"reports {positive} when p({positive}) is "
            f"{_decimal(self.threshold)} or more, else {display_name(self.negative_class)}{chosen}"
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
        ranked = range(len(probabilities))
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
        """Metadata from a parsed sidecar, every value type-checked here, at load, so that a
        bad value is one error naming its key rather than a failure at the first prediction.
        Raises ValueError naming the key; unknown top-level keys are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {_json_type(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("provenance", "metrics", "checks", "decision", "familiarity"):
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
        if decision.get("rule", "operating") not in DECISION_RULES:
            raise ValueError(f'"decision.rule" must be one of {", ".join(DECISION_RULES)}, not {_shown(decision["rule"])}')
        familiarity_threshold = values.get("familiarity", {}).get("threshold")
        if familiarity_threshold is not None and not (_is_number(familiarity_threshold) and familiarity_threshold > 0):
            raise ValueError(f'"familiarity.threshold" must be a number above 0, not {_shown(familiarity_threshold)}')
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


# What an image of each retinal modality is called, in a sentence.
MODALITY_NAMES = {"fundus": "a colour fundus photograph", "oct": "an OCT B-scan"}


@dataclass(frozen=True)
class CheckResult:
    """Whether an image is fit to be judged by the model, with one plain reason per problem."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    # When the modality check failed because the image looks like the *other* retinal modality
    # ("oct" for an OCT scan given to a fundus model): that modality, and the shipped model that
    # reads it (filled in by the service, "" when none is installed).
    looks_like: str = ""
    suggested_model: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class Prediction:
    """One image's model output. Worded by `answer()`, as model output, never as a diagnosis."""

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
    # The two-class model's decision rule that chose `label`; None when the top class is reported.
    operating_point: OperatingPoint | None = None
    # The unsure level in force when the image was judged (the user's setting).
    unsure_below: float = UNSURE_BELOW
    # The unfamiliar-image flag (familiarity.py): the image's distance from the training images
    # in the model's feature space and the threshold above which it is flagged; None when the
    # model has no familiarity record.
    familiarity_distance: float | None = None
    familiarity_threshold: float | None = None
    # The whole picture as decoded and turned upright (uint8 height x width x 3), so a view
    # shows it without decoding the file again; kept by `Classifier.predict_file`, None from a
    # batch run (which would otherwise hold every photograph in memory).
    picture: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Where the model's input lay on the picture when the field of view was standardised: the
    # square around the fitted field of view, (left, top, right, bottom) as fractions of the
    # picture's width and height, reaching beyond 0-1 where the camera cut the disc. None for
    # other fits, or where no field of view was found (then the picture was padded).
    field_of_view: tuple[float, float, float, float] | None = None

    @property
    def unfamiliar(self) -> bool | None:
        """True when the image is unlike the model's training images; None: not measured."""
        if self.familiarity_distance is None or self.familiarity_threshold is None:
            return None
        return self.familiarity_distance > self.familiarity_threshold

    @property
    def fit_to_judge(self) -> bool:
        return self.checks is None or self.checks.passed

    def answer(self) -> Answer:
        """What every output says about this prediction (see `Answer`)."""
        checks = self.checks
        judged = self.fit_to_judge
        return Answer(
            label=self.label if judged else None,
            probability=float(self.confidence) if judged else None,
            unsure=judged and self.confidence < self.unsure_below,
            reasons=tuple(checks.reasons) if checks is not None and not judged else (),
            probabilities=dict(self.probabilities),
            operating_point=self.operating_point,
            unsure_below=self.unsure_below,
            looks_like=checks.looks_like if checks is not None and not judged else "",
            suggested_model=checks.suggested_model if checks is not None and not judged else "",
            unfamiliar=self.unfamiliar,
            familiarity_distance=self.familiarity_distance,
            familiarity_threshold=self.familiarity_threshold,
        )

    def to_json_dict(self) -> dict[str, Any]:
        out = {"file": self.file, **self.answer().json_fields(), "model": self.model_name}
        if self.checks is not None:
            out["checks"] = self.checks.to_json_dict()
        return out


@dataclass(frozen=True)
class Answer:
    """The one wording rule for a result, which the GUI, CLI, JSON, CSV and PDF all use.

    - The label is the model's decision. A two-class model with an operating threshold reports
      its positive class when that class's probability reaches the threshold, even below 0.5:
      the text then names the threshold, so the label never seems to contradict the bars.
    - An answer whose label has less probability than the unsure level is marked unsure.
    - An image that failed its checks is not judged: no label, no confidence, the reasons.
    - An image unlike the model's training images (the unfamiliar-image flag) keeps its answer
      and gets a warning beside it: its output may be unreliable. The flag never replaces or
      hides the answer.
    """

    label: str | None  # None: not judged
    probability: float | None  # the label's probability
    unsure: bool
    reasons: tuple[str, ...]
    probabilities: dict[str, float]
    operating_point: OperatingPoint | None = None
    unsure_below: float = UNSURE_BELOW
    looks_like: str = ""
    suggested_model: str = ""
    unfamiliar: bool | None = None  # None: the model has no familiarity record
    familiarity_distance: float | None = None
    familiarity_threshold: float | None = None

    @property
    def not_judged(self) -> bool:
        return self.label is None

    @property
    def referred(self) -> bool | None:
        """For a model with a referral threshold: whether this answer refers (None otherwise,
        and when not judged)."""
        point = self.operating_point
        if point is None or not point.referral or self.not_judged:
            return None
        return self.label == point.positive_class

    def _thresholded(self) -> bool:
        """Whether the label rests on the threshold rather than on its own probability (a
        referral rule's "not referred" answers rest on their confidence)."""
        return self.operating_point is not None and self.referred is not False

    # -- the parts ------------------------------------------------------------------------
    def _positive(self) -> tuple[str, str, str]:
        """(p(positive) written, threshold written, "above"/"at"/"below") with the order kept."""
        point = self.operating_point
        value = float(self.probabilities.get(point.positive_class, 0.0))
        shown, bound = _apart(value, point.threshold, percent=False)
        relation = "above" if value > point.threshold else "at" if value == point.threshold else "below"
        return shown, bound, relation

    def basis(self) -> str:
        """What the label rests on: "87% model confidence", or the probability against the
        operating threshold. Empty when not judged."""
        if self.not_judged:
            return ""
        point = self.operating_point
        confidence = f"{_apart(self.probability, self.unsure_below, percent=True)[0]} model confidence"
        if point is None:
            return confidence
        shown, bound, relation = self._positive()
        positive = f"p({display_name(point.positive_class)}) = {shown}, {relation} the {point.threshold_name} {bound}"
        if self.referred is False:
            return f"{confidence}; {positive}"
        return positive + (f" chosen on {point.chosen_on}" if point.chosen_on else "")

    def hint(self) -> str:
        """For an image that looks like the other retinal modality: which model to open."""
        if not self.looks_like:
            return ""
        what = MODALITY_NAMES.get(self.looks_like, self.looks_like)
        if self.suggested_model:
            return f"This looks like {what}: open {self.suggested_model}"
        return f"This looks like {what}, which this model does not read"

    def unfamiliar_note(self) -> str:
        """The unfamiliar-image warning, for an image the model judged; else empty."""
        if self.not_judged or not self.unfamiliar:
            return ""
        shown, bound = _apart(self.familiarity_distance, self.familiarity_threshold, percent=False)
        return (
            f"Unfamiliar image: unlike the images this model learned from (distance {shown}, flagged above "
            f"{bound}); its output may be unreliable."
        )

    # -- the wordings -----------------------------------------------------------------------
    def text(self) -> str:
        """The one-line answer: CLI text, the JSON and CSV "answer" field, the batch table."""
        if self.not_judged:
            reasons = "; ".join(self.reasons) or "the image checks failed"
            if self.suggested_model:
                kind = {"oct": "OCT", "fundus": "fundus"}.get(self.looks_like, self.looks_like)
                reasons += f"; the {kind} model is {self.suggested_model}"
            return f"not judged: {reasons}"
        refer = ": refer" if self.referred else ""
        text = ("unsure: " if self.unsure else "") + f"{display_name(self.label)}{refer} ({self.basis()})"
        return text + ("; unfamiliar image: output may be unreliable" if self.unfamiliar_note() else "")

    def label_text(self) -> str:
        """The label as a table cell shows it: "unsure: diabetic retinopathy: refer"; empty when
        not judged."""
        if self.not_judged:
            return ""
        return ("unsure: " if self.unsure else "") + display_name(self.label) + (": refer" if self.referred else "")

    def short_basis(self) -> str:
        """`basis` in a few characters: "87%", or "p(DME) 0.45, threshold 0.15". Empty when
        not judged."""
        if self.not_judged:
            return ""
        point = self.operating_point
        if not self._thresholded():
            return _apart(self.probability, self.unsure_below, percent=True)[0]
        shown, bound, _ = self._positive()
        if point.referral:  # the label beside it names the class; the cell stays short
            return f"p = {shown}, threshold {bound}"
        return f"p({display_name(point.positive_class)}) {shown}, threshold {bound}"

    def headline(self) -> str:
        """The short headline of the GUI and the report."""
        if self.not_judged:
            return "Not judged: the image is not fit for this model"
        lead = "Unsure: " if self.unsure else "Model output: "
        confidence = "" if self._thresholded() else " confidence"
        refer = ": refer" if self.referred else ""
        return f"{lead}{display_name(self.label)}{refer} ({self.short_basis()}{confidence})"

    def explanation(self) -> str:
        """Under the headline, for a thresholded answer: why this label. Else empty."""
        point = self.operating_point
        if self.not_judged or point is None:
            return ""
        shown, bound, relation = self._positive()
        chosen = f" (chosen on {point.chosen_on})" if point.chosen_on else ""
        positive = display_name(point.positive_class)
        if self.referred is False:
            return (f"Not referred for {positive}: p({positive}) = {shown} is {relation} the referral threshold "
                    f"{bound}{chosen}.")
        refer = " (refer)" if self.referred else ""
        text = (
            f"Reported as {display_name(self.label)}{refer} because p({positive}) = {shown} is "
            f"{relation} the {point.threshold_name} {bound}{chosen}"
        )
        if point.referral:
            rivals = {k: v for k, v in self.probabilities.items() if k != point.positive_class}
            top = max(rivals, key=rivals.get) if rivals else ""
            other = top if top and rivals[top] > self.probabilities.get(self.label, 0.0) else point.positive_class
        else:
            other = point.negative_class if self.label == point.positive_class else point.positive_class
        if self.probabilities.get(other, 0.0) > self.probabilities.get(self.label, 0.0):
            text += f", although {display_name(other)} has the longer bar"
        return text + "."

    def warning(self) -> str:
        """The caution shown with an unsure or not-judged answer, or an unfamiliar image; else
        empty. (A not-judged answer's `hint`, which names the model to open, is shown beside it.)"""
        if self.not_judged:
            reasons = "; ".join(self.reasons) or "the image checks failed"
            return f"The image checks failed: {reasons}. The probabilities are greyed: shown for reference only, not an answer."
        parts = []
        if self.unsure:
            shown, level = _apart(self.probability, self.unsure_below, percent=not self._thresholded())
            parts.append(
                f"The model is unsure: p({display_name(self.label)}) = {shown}, below the unsure level {level}. "
                "Treat this output with caution."
            )
        parts.append(self.unfamiliar_note())
        return "\n".join(part for part in parts if part)  # each caution on its own line

    def json_fields(self) -> dict[str, Any]:
        """The answer's fields of a JSON result (label and confidence null when not judged)."""
        out: dict[str, Any] = {
            "answer": self.text(),
            "label": self.label,
            "confidence": None if self.probability is None else round(float(self.probability), 6),
            "unsure": self.unsure,
            "not_judged": self.not_judged,
            "reasons": list(self.reasons),
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "unsure_below": self.unsure_below,
        }
        point = self.operating_point
        if point is not None:
            out["operating_threshold"] = {
                "positive_class": point.positive_class, "threshold": point.threshold, "chosen_on": point.chosen_on,
                "rule": point.rule,
            }
            if point.referral:
                out["refer"] = self.referred
        if self.suggested_model:
            out["suggested_model"] = self.suggested_model
        out["unfamiliar"] = self.unfamiliar
        out["familiarity_distance"] = (
            None if self.familiarity_distance is None else round(float(self.familiarity_distance), 4)
        )
        out["familiarity_threshold"] = (
            None if self.familiarity_threshold is None else round(float(self.familiarity_threshold), 4)
        )
        return out


def _decimal(value: float) -> str:
    """A threshold as written in texts: three decimals (0.150849 -> "0.151")."""
    return f"{value:.3f}".rstrip("0").rstrip(".") if value not in (0, 1) else f"{value:g}"


def _apart(value: float, bound: float, *, percent: bool) -> tuple[str, str]:
    """`value` and `bound` written with the fewest decimals (from 0 for percentages, 2 for
    probabilities) that keep their order visible: p = 0.1505 against a threshold of 0.150849
    is written 0.1505 and 0.1508, never "0.15 below 0.15"."""
    scale, start, unit = (100.0, 0, "%") if percent else (1.0, 2, "")
    for places in range(start, start + 6):
        a, b = round(value * scale, places), round(bound * scale, places)
        if (a < b) == (value < bound) and (a > b) == (value > bound):
            break
    return f"{value * scale:.{places}f}{unit}", f"{bound * scale:.{places}f}{unit}"
