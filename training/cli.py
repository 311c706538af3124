"""`python -m training <verb>`: the training package's command line.

A table of verbs, each a module in `training/commands/` with `HELP`, `add_arguments(parser)` and
`run(args) -> int`. Building the parser imports only those light modules, so `--help` is instant;
each verb imports its heavy library module only when chosen, so one verb's dependencies never slow
another.

The library modules never print: they log to `training.*` loggers, and `main` shows those
messages as plain lines on stdout, which is what a person running a verb reads.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from retina_desktop.core.errors import UserError

# verb -> module in training/commands/, in the order `--help` lists them.
VERBS = {
    "classify": "classify",
    "evaluate": "evaluate",
    "modality": "modality",
    "fit-checks": "fit_checks",
    "card": "card",
    "export": "export",
    "gan": "gan",
    "synthesize": "synthesize",
    "gan-eval": "gan_eval",
    "gan-combine": "gan_combine",
    "pipeline": "pipeline",
    "gan-curve": "gan_curve",
    "pix2pix": "pix2pix",
    "pix2pix-eval": "pix2pix_eval",
    "pix2pix-generate": "pix2pix_generate",
    "import-weights": "import_weights",
    "compare": "compare",
    "fov-figure": "fov_figure",
    "linear-probe": "linear_probe",
    "screening-probe": "screening_probe",
    "familiarity": "familiarity",
    "gpu-job": "gpu_job",
    "gpu-train": "gpu_train",
}


def command(verb: str) -> ModuleType:
    """The module in training/commands/ that declares and runs `verb`."""
    return importlib.import_module(f"{__package__}.commands.{VERBS[verb]}")


def build_parser() -> argparse.ArgumentParser:
    """`python -m training`'s parser: each verb's options from its command module."""
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train and judge Retina Desktop's models."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb in VERBS:
        module = command(verb)
        module.add_arguments(verbs.add_parser(verb, help=module.HELP))
    return parser


class _StdoutHandler(logging.StreamHandler):
    """Writes each message as a line to the `sys.stdout` of the moment (a test's capture swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # not setStream: the stream it replaces may be closed by now
        super().emit(record)


def show_progress() -> None:
    """Show what the training package logs at INFO and above as plain lines on stdout, once."""
    package = logging.getLogger(__package__)
    if not any(isinstance(handler, _StdoutHandler) for handler in package.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        package.addHandler(handler)
    package.setLevel(logging.INFO)
    # Shown once, here: absl configures the root logger on Keras's first warning (saving an .h5
    # does), and each line would then be printed again on stderr.
    package.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the verb `argv` names (default: the process's arguments); returns the exit status."""
    parsed = build_parser().parse_args(argv)
    show_progress()
    try:
        return command(parsed.verb).run(parsed)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
