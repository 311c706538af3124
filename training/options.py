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

A verb that trains holds its hyperparameters (the dataclass saved beside its outputs) in a
`nested(...)` field: their options join the verb's at that field, and `parse` builds both.
Options appear on the command line in declaration order; `after=` moves one behind another,
which keeps a verb's `--help` as it always read while a saved config keeps its key order.

This module imports only the standard library and the app's `UserError`, so building
`python -m training --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, TypeVar

from retina_desktop.core.errors import UserError

_KEY = "training.option"
_NESTED = "training.nested"
T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """How one field appears on the command line (what argparse's `add_argument` takes)."""

    flag: str | None = None  # default: "--" + the field's name with "-" for "_" ("--no-" + it when negated)
    help: str | None = None
    type: Callable[[str], Any] | None = None  # default: from the field's annotation
    # What the command line accepts. A mapping's keys are the words it takes, its values what the
    # field holds: {"spectral": True, "none": False} for a bool field set by `--d-norm WORD`.
    choices: Sequence[Any] | Mapping[str, Any] | None = None
    metavar: str | None = None
    required: bool = False
    positional: bool = False  # a positional argument (`nargs` applies)
    nargs: str | int | None = None
    const: Any = None  # the value of an `nargs="?"` option given without one
    repeat: bool = False  # the flag may be given several times (action="append")
    # A boolean flag that turns the field off: field `augment` (default True), flag "--no-augment".
    negated: bool = False
    group: str | None = None  # title of an argument group to list it under
    hidden: bool = False  # accepted but left out of --help
    after: str | None = None  # the field whose option this one follows on the command line


@dataclass(frozen=True)
class _Nested:
    cls: type
    invalid: str  # prefix of the one-line error when `cls` refuses the values given


def option(default: Any = MISSING, *, flag: str | None = None, help: str | None = None,
           type: Callable[[str], Any] | None = None, choices: Sequence[Any] | Mapping[str, Any] | None = None,
           metavar: str | None = None, required: bool = False, positional: bool = False,
           nargs: str | int | None = None, const: Any = None, repeat: bool = False, negated: bool = False,
           group: str | None = None, hidden: bool = False, after: str | None = None) -> Any:
    """A dataclass field that the command line sets; see `Option` for the arguments.

    A required option (or a positional one without a default) gets the default "" in the
    dataclass, so the dataclass can still be built in code with keywords."""
    if default is MISSING:
        default = () if repeat else ("" if required or positional else None)
    spec = Option(flag=flag, help=help, type=type, choices=choices, metavar=metavar, required=required,
                  positional=positional, nargs=nargs, const=const, repeat=repeat, negated=negated, group=group,
                  hidden=hidden, after=after)
    if isinstance(default, list | dict | set):
        raise TypeError("option defaults must be immutable (a tuple, not a list)")
    return dataclasses.field(default=default, metadata={_KEY: spec})


def nested(cls: type, *, invalid: str = "") -> Any:
    """A field holding the options dataclass `cls` (say, the hyperparameters a trainer saves):
    its options join the verb's where this field is declared. A `ValueError` that `cls` raises
    for the values given becomes a one-line `UserError`, prefixed with `invalid`."""
    return dataclasses.field(default_factory=cls, metadata={_NESTED: _Nested(cls, invalid)})


def absolute_path(text: str) -> str:
    """An option's `type`: the path made absolute (links resolved), so that one folder is one string
    in a saved config however the command spelled it; "" stays "" (none)."""
    return str(Path(text).resolve()) if text else ""


@dataclass(frozen=True)
class _Entry:
    field: dataclasses.Field
    spec: Option
    annotation: Any  # the field's resolved type

    @property
    def name(self) -> str:
        return self.field.name


def _entries(cls: type) -> Iterator[_Entry]:
    """Every option of `cls`, those of its nested dataclasses in place, in declaration order."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if _KEY in field.metadata:
            yield _Entry(field, field.metadata[_KEY], hints[field.name])
        elif _NESTED in field.metadata:
            yield from _entries(field.metadata[_NESTED].cls)


def command_line_options(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    """Every option of `cls` (nested ones included) in the order the command line lists them:
    declaration order, each option with `after=` moved behind the one it names."""
    return [(entry.field, entry.spec) for entry in _in_command_line_order(cls)]


def _in_command_line_order(cls: type) -> list[_Entry]:
    entries = list(_entries(cls))
    names = [entry.name for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TypeError(f"{cls.__name__}: options declared twice: {duplicates}")
    followers: dict[str, list[_Entry]] = {}
    for entry in entries:
        if entry.spec.after is not None:
            if entry.spec.after not in names:
                raise TypeError(f"{cls.__name__}.{entry.name}: after={entry.spec.after!r} names no option")
            followers.setdefault(entry.spec.after, []).append(entry)
    ordered: list[_Entry] = []

    def place(entry: _Entry) -> None:
        ordered.append(entry)
        for follower in followers.get(entry.name, ()):
            place(follower)

    for entry in entries:
        if entry.spec.after is None:
            place(entry)
    if len(ordered) != len(entries):
        circle = sorted(set(names) - {entry.name for entry in ordered})
        raise TypeError(f"{cls.__name__}: the after= of {circle} go in a circle")
    return ordered


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


def _flag(field: dataclasses.Field, spec: Option) -> str:
    return spec.flag or ("--no-" if spec.negated else "--") + field.name.replace("_", "-")


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add the options declared on the dataclass `cls` (and its nested ones) to `parser`."""
    groups: dict[str, Any] = {}
    for entry in _in_command_line_order(cls):
        field, spec = entry.field, entry.spec
        target: Any = parser
        if spec.group:
            if spec.group not in groups:
                groups[spec.group] = parser.add_argument_group(spec.group)
            target = groups[spec.group]
        target.add_argument(*_names(field, spec), **_argparse_kwargs(field, spec, _base_type(entry.annotation)))


def flag(cls: type, name: str) -> str:
    """The command-line flag of the option field `name` of `cls` or of a dataclass nested in it
    (`--no-class-weights` for `class_weighting`)."""
    for entry in _entries(cls):
        if entry.name == name:
            return _flag(entry.field, entry.spec)
    raise KeyError(f"{cls.__name__} has no option {name!r}")


def _names(field: dataclasses.Field, spec: Option) -> list[str]:
    return [field.name] if spec.positional else [_flag(field, spec)]


def _argparse_kwargs(field: dataclasses.Field, spec: Option, base: Any) -> dict[str, Any]:
    """What `add_argument` takes for one option; `base` is the type its annotation names."""
    kwargs: dict[str, Any] = {"help": argparse.SUPPRESS if spec.hidden else spec.help}
    default = field.default
    if isinstance(spec.choices, Mapping):  # the command line's word for the field's default
        default = next((word for word, value in spec.choices.items() if value == default), None)
    if spec.positional:
        if spec.nargs is not None:
            kwargs["nargs"] = spec.nargs
        if default is not MISSING and spec.nargs in ("?", "*"):
            kwargs["default"] = default
        is_switch = False
    else:
        kwargs["dest"] = field.name
        is_switch = base is bool and spec.type is None and spec.choices is None
        if is_switch:
            kwargs["action"] = "store_false" if spec.negated else "store_true"
            kwargs["default"] = default
        else:
            kwargs["default"] = None if spec.repeat else default
            if spec.repeat:
                kwargs["action"] = "append"
            if spec.required:
                kwargs["required"] = True
            if spec.nargs is not None:
                kwargs["nargs"] = spec.nargs
            if spec.nargs == "?":
                kwargs["const"] = spec.const
    if not is_switch:
        parse_type = spec.type or (base if base in (int, float) else None)
        if parse_type is not None:
            kwargs["type"] = parse_type
        if spec.choices is not None:
            kwargs["choices"] = tuple(spec.choices)
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        elif spec.flag and not spec.positional and spec.choices is None:
            # argparse names the value after the dest (the field); a flag named otherwise keeps
            # the name it shows: `--size SIZE` for the field `height`.
            kwargs["metavar"] = spec.flag.lstrip("-").replace("-", "_").upper()
    return kwargs


def parse(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass `cls` from parsed options (lists become tuples; a repeatable option never
    given becomes its default; nested dataclasses are built from their own options);
    `overrides` set fields the command line does not."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if _NESTED in field.metadata:
            values[field.name] = _parse_nested(field.metadata[_NESTED], args)
            continue
        if _KEY not in field.metadata or not hasattr(args, field.name):
            continue
        spec: Option = field.metadata[_KEY]
        value = getattr(args, field.name)
        if spec.repeat and value is None:
            value = field.default
        if isinstance(spec.choices, Mapping) and value is not None:
            value = spec.choices[value]
        values[field.name] = _immutable(value)
    values.update(overrides)
    return cls(**values)


def _parse_nested(nested_field: _Nested, args: argparse.Namespace) -> Any:
    try:
        return parse(nested_field.cls, args)
    except ValueError as err:  # values that parse one by one but cannot go together
        raise UserError(f"{nested_field.invalid}{err}") from err


def _immutable(value: Any) -> Any:
    """Lists (of lists) from argparse as tuples (of tuples): options are frozen."""
    return tuple(_immutable(item) for item in value) if isinstance(value, list) else value
