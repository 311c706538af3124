"""`python -m training`'s command line (training/cli.py): a table of verbs, each a module in
training/commands/ named after it, and a dispatcher that maps errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import inspect

import pytest

from retina_desktop.core.errors import UserError
from tests.conftest import ROOT
from training import cli

COMMANDS = ROOT / "training" / "commands"


@pytest.mark.parametrize("verb", list(cli.VERBS))
def test_every_verb_is_a_command_module_named_after_it(verb):
    name = verb.replace("-", "_")
    assert cli.VERBS[verb] == name
    assert (COMMANDS / f"{name}.py").is_file()
    module = importlib.import_module(f"training.commands.{name}")
    assert isinstance(module.HELP, str) and module.HELP
    assert list(inspect.signature(module.add_arguments).parameters) == ["parser"]
    assert list(inspect.signature(module.run).parameters) == ["args"]
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    assert len(parser._actions) > 1  # -h and the verb's own options


def test_every_command_module_is_in_the_table():
    modules = {p.stem for p in COMMANDS.glob("*.py")} - {"__init__"}
    assert modules == set(cli.VERBS.values())


def test_help_lists_the_verbs_in_table_order():
    subparsers = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(subparsers.choices) == list(cli.VERBS)


@pytest.mark.parametrize("raised, code", [(None, 7), (UserError("no such file"), 1), (KeyboardInterrupt(), 130)])
def test_main_runs_the_chosen_command_and_maps_errors_to_exit_codes(monkeypatch, capsys, raised, code):
    seen = []

    def run(args):
        seen.append(args)
        if raised is not None:
            raise raised
        return 7

    monkeypatch.setattr(cli.command("compare"), "run", run)
    assert cli.main(["compare", "--row", "a", "b.json"]) == code
    assert seen[0].verb == "compare" and seen[0].row == [["a", "b.json"]]
    err = capsys.readouterr().err
    if code == 1:
        assert err == "error: no such file\n"
    elif code == 130:
        assert "continue with --resume" in err
