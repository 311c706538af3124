"""One image's model output (`Prediction`), its image checks (`CheckResult`) and the one
wording rule for an answer (`Answer`).

`Answer` (from `Prediction.answer()`) is the only place that decides what an answer says: the
label is the model's decision (for a two-class model with an operating threshold, the positive
class when its probability reaches the threshold, and the text names the threshold), an answer
whose label has less probability than the unsure level is marked unsure, and an image that
failed its checks has no label at all. The GUI, the CLI's text and JSON, the batch CSV and the
PDF report all read it, so they cannot drift apart.

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retina_desktop.core.model_card import OperatingPoint
from retina_desktop.core.wording import MODALITY_NAMES, apart, display_name

# Below this probability of its label an answer is called unsure (the user's setting overrides it).
UNSURE_BELOW = 0.6


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

    # -- what a judged answer holds (the wordings ask `not_judged` first) --------------------
    @property
    def _label(self) -> str:
        assert self.label is not None, "a not-judged answer has no label"
        return self.label

    @property
    def _probability(self) -> float:
        assert self.probability is not None, "a not-judged answer has no probability"
        return self.probability

    @property
    def _point(self) -> OperatingPoint:
        assert self.operating_point is not None, "this answer has no operating point"
        return self.operating_point

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
        point = self._point
        value = float(self.probabilities.get(point.positive_class, 0.0))
        shown, bound = apart(value, point.threshold, percent=False)
        relation = "above" if value > point.threshold else "at" if value == point.threshold else "below"
        return shown, bound, relation

    def basis(self) -> str:
        """What the label rests on: "87% model confidence", or the probability against the
        operating threshold. Empty when not judged."""
        if self.not_judged:
            return ""
        point = self.operating_point
        confidence = f"{apart(self._probability, self.unsure_below, percent=True)[0]} model confidence"
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
        if self.not_judged or self.familiarity_distance is None or self.familiarity_threshold is None:
            return ""
        if not self.unfamiliar:
            return ""
        shown, bound = apart(self.familiarity_distance, self.familiarity_threshold, percent=False)
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
        text = ("unsure: " if self.unsure else "") + f"{display_name(self._label)}{refer} ({self.basis()})"
        return text + ("; unfamiliar image: output may be unreliable" if self.unfamiliar_note() else "")

    def label_text(self) -> str:
        """The label as a table cell shows it: "unsure: diabetic retinopathy: refer"; empty when
        not judged."""
        if self.not_judged:
            return ""
        return ("unsure: " if self.unsure else "") + display_name(self._label) + (": refer" if self.referred else "")

    def short_basis(self) -> str:
        """`basis` in a few characters: "87%", or "p(DME) 0.45, threshold 0.15". Empty when
        not judged."""
        if self.not_judged:
            return ""
        point = self.operating_point
        if not self._thresholded():
            return apart(self._probability, self.unsure_below, percent=True)[0]
        point = self._point
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
        return f"{lead}{display_name(self._label)}{refer} ({self.short_basis()}{confidence})"

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
            f"Reported as {display_name(self._label)}{refer} because p({positive}) = {shown} is "
            f"{relation} the {point.threshold_name} {bound}{chosen}"
        )
        if point.referral:
            rivals = {k: v for k, v in self.probabilities.items() if k != point.positive_class}
            top = max(rivals, key=lambda name: rivals[name]) if rivals else ""
            other = top if top and rivals[top] > self.probabilities.get(self._label, 0.0) else point.positive_class
        else:
            other = point.negative_class if self.label == point.positive_class else point.positive_class
        if self.probabilities.get(other, 0.0) > self.probabilities.get(self._label, 0.0):
            text += f", although {display_name(other)} has the longer bar"
        return text + "."

    def warning(self) -> str:
        """The caution shown with an unsure or not-judged answer, or an unfamiliar image; else
        empty. (A not-judged answer's `hint`, which names the model to open, is shown beside it.)"""
        if self.not_judged:
            reasons = "; ".join(self.reasons) or "the image checks failed"
            return (f"The image checks failed: {reasons}. The probabilities are greyed: shown for reference only, "
                    "not an answer.")
        parts = []
        if self.unsure:
            shown, level = apart(self._probability, self.unsure_below, percent=not self._thresholded())
            parts.append(
                f"The model is unsure: p({display_name(self._label)}) = {shown}, below the unsure level {level}. "
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

