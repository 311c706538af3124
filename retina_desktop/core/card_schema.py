"""The declared shape of a classifier's sidecar, and one plain message for what breaks it.

The schema is declared once, as msgspec structs, and checked declaratively: types, bounds and
choices live in the annotations, not in hand-written checks. msgspec's own messages name the
field as a JSON path ("Expected `float` > 0.0 - at `$.temperature`"); `validated` turns them
into the sentence the user reads, naming the key and the value it found
('"temperature" must be a number above 0, not -1.0').

The generators' sidecars are declared beside their reader (inference/sidecars.py); every kind
shares `validated` and the kind field ("kind": "classifier" here).

This module imports neither tkinter nor tensorflow, so every side can use it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal, TypeVar

import msgspec
import msgspec.inspect
from msgspec import UNSET, Meta, Struct, UnsetType

T = TypeVar("T")

# How an image is fitted to the model's input, how its pixels are scaled, how a stored threshold
# decides: declared here once (model_card's FIT_MODES and SCALINGS are these).
Fit = Literal["crop", "pad", "stretch", "fov"]
Scaling = Literal["none", "tm", "unit"]
Rule = Literal["operating", "referral"]
# JSON as Python reads it allows NaN and Infinity; a temperature of Infinity flattens every answer
# and a NaN check limit switches its check off, so every number here must be finite.
_LARGEST = 1.7976931348623157e308
Finite = Annotated[float, Meta(ge=-_LARGEST, le=_LARGEST)]
Positive = Annotated[float, Meta(gt=0, le=_LARGEST)]
Probability = Annotated[float, Meta(ge=0, le=1)]
Pixels = Annotated[int, Meta(gt=0)]


class InputSchema(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """The model's input ("input"); see `model_card.InputSpec`."""

    height: Pixels = 224
    width: Pixels = 224
    fit: Fit = "crop"
    scaling: Scaling = "tm"


class ThresholdsSchema(Struct):
    """The fitted image-check limits ("checks.thresholds"); names this version does not use pass."""

    min_side: Finite | UnsetType = UNSET
    min_brightness: Finite | UnsetType = UNSET
    max_saturated: Finite | UnsetType = UNSET
    min_sharpness: Finite | UnsetType = UNSET
    min_field_of_view: Finite | UnsetType = UNSET
    min_modality_probability: Finite | UnsetType = UNSET


class ChecksSchema(Struct):
    thresholds: ThresholdsSchema = msgspec.field(default_factory=ThresholdsSchema)


class DecisionSchema(Struct):
    """The stored decision rule ("decision"); see `model_card.OperatingPoint`."""

    positive_class: str | UnsetType = UNSET
    threshold: Probability = 0.5
    rule: Rule = "operating"


class FamiliaritySchema(Struct):
    threshold: Positive | UnsetType = UNSET


class ClassifierSidecar(Struct, tag_field="kind", tag="classifier"):
    """A classifier's sidecar (`keras_model.json`). Unknown top-level keys are ignored."""

    classes: list[str | int] = []
    input: InputSchema = msgspec.field(default_factory=InputSchema)
    modality: str = "unknown"
    name: str = "unnamed model"
    version: str | int = "0"
    # A temperature of 0 divides by zero and a negative one reverses the ranking.
    temperature: Positive = 1.0
    provenance: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    checks: ChecksSchema = msgspec.field(default_factory=ChecksSchema)
    decision: DecisionSchema = msgspec.field(default_factory=DecisionSchema)
    familiarity: FamiliaritySchema = msgspec.field(default_factory=FamiliaritySchema)


def validated(data: Any, schema: type[T]) -> T:
    """`data` (parsed JSON) checked against `schema`; ValueError with one plain line otherwise."""
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as err:
        raise ValueError(plain_message(str(err), data, schema)) from None


# What msgspec calls a JSON type, as a sentence says it.
_NOUNS = {"object": "an object", "array": "a list", "str": "a string", "bool": "true/false", "null": "null",
          "int": "a whole number", "float": "a number"}
_BOUNDS = {">": "above", ">=": "at least", "<": "below", "<=": "at most"}
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def plain_message(message: str, data: Any, schema: Any = None) -> str:
    """msgspec's validation message as a sentence naming the key and the value found there
    (and, for a field of fixed choices declared in `schema`, the choices)."""
    found = _AT.search(message)
    path = _dotted(found.group("path")) if found else ""
    problem = message[: found.start()] if found else message
    value = _value_at(data, found.group("path")) if found else data
    if not path:
        match = re.fullmatch(r"Expected `(\w+)`, got `(\w+)`", problem)
        if match:
            return f"expected a JSON object, found {_NOUNS.get(match.group(2), match.group(2))}"
        missing = re.fullmatch(r"Object missing required field `(\w+)`", problem)
        return f'"{missing.group(1)}" is missing' if missing else problem
    if match := re.fullmatch(r"Expected `([^`]+)`, got `(\w+)`", problem):
        return f'"{path}" must be {_noun(match.group(1))}, not {_shown(value)}'
    if match := re.fullmatch(r"Expected `(\w+)` (>=|<=|>|<) ([-\d.e+]+)", problem):
        bound = float(match.group(3))
        if abs(bound) >= _LARGEST:
            return f'"{path}" must be a finite number, not {_shown(value)}'
        return f'"{path}" must be a number {_BOUNDS[match.group(2)]} {bound:g}, not {_shown(value)}'
    if match := re.fullmatch(r"Expected `(\w+)` of length >= (\d+)", problem):
        return f'"{path}" must be {_noun(match.group(1))} of at least {match.group(2)}, not {_shown(value)}'
    if match := re.fullmatch(r"Object contains unknown field `(\w+)`", problem):
        return f'"{path}.{match.group(1)}" is not a setting of "{path}"'
    if match := re.fullmatch(r"Object missing required field `(\w+)`", problem):
        return f'"{path}.{match.group(1)}" is missing'
    if re.fullmatch(r"Invalid (enum )?value .*", problem):
        choices = _choices(schema, found.group("path")) if found else ()
        if choices:
            return f'"{path}" must be one of {", ".join(map(str, choices))}, not {_shown(value)}'
        return f'"{path}" cannot be {_shown(value)}'
    return f'"{path}": {problem}'


def _choices(schema: Any, json_path: str) -> tuple[Any, ...]:
    """The values a Literal field at `json_path` of `schema` may take (() when it is not one)."""
    if schema is None:
        return ()
    info: Any = msgspec.inspect.type_info(schema)
    for key in re.findall(r"\.(\w+)", json_path):
        while isinstance(info, msgspec.inspect.UnionType):
            info = next((t for t in info.types if isinstance(t, msgspec.inspect.StructType)), None)
        if not isinstance(info, msgspec.inspect.StructType):
            return ()
        info = next((f.type for f in info.fields if f.encode_name == key), None)
    if isinstance(info, msgspec.inspect.UnionType):
        info = next((t for t in info.types if isinstance(t, msgspec.inspect.LiteralType)), None)
    if isinstance(info, msgspec.inspect.LiteralType):
        return tuple(info.values)
    return ()


def _noun(types: str) -> str:
    """"str | null" -> "a string or null"."""
    return " or ".join(_NOUNS.get(name, name) for name in types.split(" | "))


def _dotted(json_path: str) -> str:
    """"$.checks.thresholds.min_side" -> "checks.thresholds.min_side"; "$.classes[0]" -> "classes[0]"."""
    return json_path.lstrip(".")


def _value_at(data: Any, json_path: str) -> Any:
    """The value a msgspec path points at in `data` (None where it cannot be followed)."""
    value = data
    for key, index in re.findall(r"\.(\w+)|\[(\d+)\]", json_path):
        try:
            value = value[key] if key else value[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _shown(value: Any) -> str:
    """A JSON value for a message, cut short: the message names the value, it does not hold it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value)
    if len(text) <= 40:
        return text
    nouns: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    noun = nouns.get(type(value), "a value")
    return f"{noun} ({text[:30]}...)"
