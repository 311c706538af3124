"""Options declared once: a dataclass field carries its command-line flag, help and parsing.

A verb's options are one frozen dataclass (in its area's light `config.py`). Each field that the
command line sets is declared with `option(...)`; `add_options(parser, Options)` builds the
verb's argparse options from the fields, and `parse(Options, args)` turns the parsed namespace
back into the dataclass. Library entry points take the dataclass, never an argparse namespace,
so a default, a flag or a help text is written in exactly one place.

    @dataclass(frozen=True)
    class FitChecksOptions:
        model: str = option(required=True, help="the model bundle's .h5")
        data: str = option(required=True, help="folder of class sub-folders")
        seed: int = option(0)

This module imports only the standard library, so building `python -m training --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, TypeVar

_KEY = "training.option"
T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """How one field appears on the command line (what argparse's `add_argument` takes)."""

    flag: str | None = None  # default: "--" + the field's name with "-" for "_"
    help: str | None = None
    type: Callable[[str], Any] | None = None  # default: from the field's annotation
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    required: bool = False
    positional: bool = False  # a positional argument (`nargs` applies)
    nargs: str | int | None = None
    repeat: bool = False  # the flag may be given several times (action="append")
    # A boolean flag that turns the field off: field `augment` (default True), flag "--no-augment".
    negated: bool = False
    group: str | None = None  # title of an argument group to list it under
    hidden: bool = False  # accepted but left out of --help


def option(default: Any = MISSING, *, flag: str | None = None, help: str | None = None,
           type: Callable[[str], Any] | None = None, choices: Sequence[Any] | None = None,
           metavar: str | None = None, required: bool = False, positional: bool = False,
           nargs: str | int | None = None, repeat: bool = False, negated: bool = False,
           group: str | None = None, hidden: bool = False) -> Any:
    """A dataclass field that the command line sets; see `Option` for the arguments.

    A required option (or a positional one without a default) gets the default "" in the
    dataclass, so the dataclass can still be built in code with keywords."""
    if default is MISSING:
        default = () if repeat else ("" if required or positional else None)
    spec = Option(flag, help, type, choices, metavar, required, positional, nargs, repeat, negated, group, hidden)
    if isinstance(default, list | dict | set):
        raise TypeError("option defaults must be immutable (a tuple, not a list)")
    return dataclasses.field(default=default, metadata={_KEY: spec})


def options_of(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """The fields of `cls` that the command line sets, in declaration order."""
    return [(f, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def _base_type(annotation: Any) -> Any:
    """`int` for `int`, `int | None`, `Optional[int]`, `tuple[int, ...]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(rest[0]) if len(rest) == 1 else str
    if origin in (tuple, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return _base_type(args[0]) if args else str
    return annotation


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add the options declared on the dataclass `cls` to `parser`."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for field, spec in options_of(cls):
        target: Any = parser
        if spec.group:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if spec.hidden else spec.help}
        base = _base_type(hints[field.name])
        if spec.positional:
            names = [field.name]
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
            if field.default is not MISSING and spec.nargs in ("?", "*"):
                kwargs["default"] = field.default
        else:
            names = [spec.flag or "--" + field.name.replace("_", "-")]
            kwargs["dest"] = field.name
            if base is bool and spec.type is None:
                kwargs["action"] = "store_false" if spec.negated else "store_true"
            else:
                kwargs["default"] = None if spec.repeat else field.default
                if spec.repeat:
                    kwargs["action"] = "append"
                if spec.required:
                    kwargs["required"] = True
                if spec.nargs is not None:
                    kwargs["nargs"] = spec.nargs
        if "action" not in kwargs or kwargs["action"] == "append":
            parse_type = spec.type or (base if base in (int, float) else None)
            if parse_type is not None:
                kwargs["type"] = parse_type
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
            if spec.metavar is not None:
                kwargs["metavar"] = spec.metavar
        if "action" in kwargs and kwargs["action"] != "append":
            kwargs["default"] = field.default
        target.add_argument(*names, **kwargs)


def parse(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass `cls` from parsed options (lists become tuples; a repeatable option never
    given becomes its default); `overrides` set fields the command line does not."""
    values: dict[str, Any] = {}
    for field, spec in options_of(cls):
        if not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if spec.repeat and value is None:
            value = field.default
        if isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    values.update(overrides)
    return cls(**values)
