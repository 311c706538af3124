"""Options declared once (training/options.py): a dataclass field carries its flag, help and
parsing; `add_options` builds the argparse options from the fields, `parse` builds the dataclass
back; and every verb of `python -m training` declares its options that way."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from retina_desktop.core.errors import UserError
from training import cli
from training.options import absolute_path, add_options, command_line_options, flag, nested, option, parse


@dataclass(frozen=True)
class Hyper:
    """A config saved beside a run's outputs: its field order is the order of its saved keys."""

    size: int = option(160, flag="--size-px", help="image side")
    rate: float = option(1e-3)
    augment: bool = option(True, negated=True, after="size")
    norm: bool = option(True, flag="--norm", choices={"spectral": True, "none": False})
    hidden_knob: float = 0.5  # not on the command line

    def __post_init__(self) -> None:
        if self.size % 8:
            raise ValueError(f"size {self.size} is not a multiple of 8")


@dataclass(frozen=True)
class Verb:
    data: str = option(required=True, help="the data folder")
    extra: tuple[str, ...] = option(repeat=True, metavar="DIR", help="repeatable")
    config: Hyper = nested(Hyper, invalid="verb settings: ")
    name: str | None = option(after="rate")
    resume: bool = option(False, help="continue")
    stop_after: int | None = option(hidden=True)
    coordinator: str | None = option(metavar="HOST:PORT", group="cluster")


def _parser(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verb")
    add_options(parser, cls)
    return parser


def test_a_field_becomes_its_option_and_parses_back_into_the_dataclass():
    options = parse(Verb, _parser(Verb).parse_args(["--data", "d", "--extra", "a", "--extra", "b", "--size-px", "64",
                                                  "--no-augment", "--norm", "none", "--name", "n", "--resume"]))
    assert options == Verb(data="d", extra=("a", "b"), name="n", resume=True,
                           config=Hyper(size=64, augment=False, norm=False))
    defaults = parse(Verb, _parser(Verb).parse_args(["--data", "d"]))
    assert defaults == Verb(data="d")  # the command line's defaults are the fields' own
    assert defaults.extra == () and defaults.config == Hyper() and defaults.stop_after is None


def test_types_come_from_the_annotations_and_a_bad_value_is_a_usage_error(capsys):
    parser = _parser(Verb)
    assert parse(Verb, parser.parse_args(["--data", "d", "--rate", "0.5", "--stop-after", "3"])).config.rate == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--size-px", "big"])
    assert "invalid int value: 'big'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --data is required
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "d", "--norm", "batch"])
    assert "choose from 'spectral', 'none'" in capsys.readouterr().err


def test_help_lists_options_in_declaration_order_with_after_moving_one_behind_another():
    flags = [spec.flag or field.name for field, spec in command_line_options(Verb)]
    assert flags == ["data", "extra", "--size-px", "augment", "rate", "name", "--norm", "resume", "stop_after",
                     "coordinator"]
    text = _parser(Verb).format_help()
    usage = " ".join(text.split("options:")[0].split())
    assert usage.startswith("usage: verb [-h] --data DATA [--extra DIR] [--size-px SIZE_PX] [--no-augment] "
                            "[--rate RATE] [--name NAME] [--norm {spectral,none}] [--resume]")
    assert "--stop-after" not in text  # hidden
    assert "cluster:\n  --coordinator HOST:PORT" in text
    # A flag named otherwise than its field shows the flag's name for its value, as argparse would.
    assert re.search(r"--size-px SIZE_PX\s+image side", text)


def test_after_follows_chains_and_a_bad_after_is_refused():
    @dataclass(frozen=True)
    class Chained:
        a: int = option(0)
        b: int = option(0, after="d")
        c: int = option(0)
        d: int = option(0, after="a")

    assert [f.name for f, _ in command_line_options(Chained)] == ["a", "d", "b", "c"]

    @dataclass(frozen=True)
    class Unknown:
        a: int = option(0, after="z")

    @dataclass(frozen=True)
    class Circle:
        a: int = option(0, after="b")
        b: int = option(0, after="a")

    @dataclass(frozen=True)
    class Twice:  # `rate` is Hyper's too
        rate: float = option(0.1)
        config: Hyper = nested(Hyper)

    with pytest.raises(TypeError, match="names no option"):
        command_line_options(Unknown)
    with pytest.raises(TypeError, match="circle"):
        command_line_options(Circle)
    with pytest.raises(TypeError, match="declared twice"):
        command_line_options(Twice)


def test_a_nested_config_that_refuses_the_values_is_one_user_error():
    with pytest.raises(UserError, match=r"^verb settings: size 12 is not a multiple of 8$"):
        parse(Verb, _parser(Verb).parse_args(["--data", "d", "--size-px", "12"]))
    with pytest.raises(ValueError):  # built in code, the config raises its own error
        Hyper(size=12)


def test_lists_become_tuples_and_optional_values_keep_their_const():
    @dataclass(frozen=True)
    class Rows:
        row: tuple[tuple[str, ...], ...] = option(repeat=True, required=True, nargs="+", metavar="ITEM")
        store: str | None = option(nargs="?", const="", metavar="NAME")
        variant: str = option(positional=True, choices=("a", "b"))

    parser = _parser(Rows)
    got = parse(Rows, parser.parse_args(["b", "--row", "x", "y", "--row", "z", "--store"]))
    assert got == Rows(row=(("x", "y"), ("z",)), store="", variant="b")
    assert parse(Rows, parser.parse_args(["a", "--row", "x"])).store is None


def test_defaults_must_be_immutable_and_flags_are_named_once():
    with pytest.raises(TypeError, match="immutable"):
        option([1, 2])
    assert flag(Verb, "augment") == "--no-augment" and flag(Verb, "size") == "--size-px"
    assert flag(Verb, "stop_after") == "--stop-after"
    with pytest.raises(KeyError):
        flag(Verb, "hidden_knob")


def test_absolute_path_makes_one_spelling_of_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_path("runs/../data") == str((tmp_path / "data").resolve())
    assert absolute_path("") == ""
    assert Path(absolute_path(".")).is_absolute()


def _options_class(verb: str) -> type:
    module = cli.command(verb)
    found = [v for v in vars(module).values()
             if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__.endswith(".config")]
    assert len(found) == 1, f"{verb}: its command module imports one options dataclass, not {found}"
    return found[0]


def _required_argv(parser: argparse.ArgumentParser) -> list[str]:
    """The least each verb needs: a value for every required option (a number where one is typed)."""
    argv = []
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":  # a positional: its first choice
            argv.append(str(next(iter(action.choices))))
        elif action.required:
            argv += [action.option_strings[0], "1" if action.type is not None else "x"]
    return argv


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_builds_its_parser_from_one_options_dataclass_whose_defaults_are_the_fields(verb):
    cls = _options_class(verb)
    parser = argparse.ArgumentParser()
    importlib.import_module(f"training.commands.{cli.VERBS[verb]}").add_arguments(parser)
    declared = {field.name for field, _ in command_line_options(cls)}
    assert {a.dest for a in parser._actions} - {"help"} == declared
    argv = _required_argv(parser)
    if verb == "pipeline":
        argv += ["--report-only"]  # else --data and --scarce are needed too
    options = parse(cls, parser.parse_args(argv))
    given = {a.dest for a in parser._actions if a.required or not a.option_strings} | {"report_only"}

    def defaults_kept(instance, owner: type) -> None:
        for field in dataclasses.fields(owner):
            value = getattr(instance, field.name)
            if dataclasses.is_dataclass(value):
                defaults_kept(value, type(value))
            elif field.name in declared and field.name not in given | COMPLETED:
                assert value == field.default, f"{verb} {field.name}: {value!r} != {field.default!r}"

    defaults_kept(options, cls)


# Fields whose default means "from another field", which __post_init__ fills in: a classifier's
# `width` (from `--size`) and a GAN discriminator's learning rate (the generator's).
COMPLETED = {"width", "d_learning_rate"}
