"""The `gan-combine` verb: one generator file in which chosen classes are drawn by their own
generators (a scarce class fine-tuned alone with `gan --labels CLASS --init-generator ...`).

Its options are `GanCombineOptions` (training/gan/config.py); `run` hands them to
`training.gan.combine.run_combine`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.gan.config import GanCombineOptions
from training.options import add_options, parse

HELP = "join generators into one: each class drawn by the generator chosen for it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GanCombineOptions)


def run(args: argparse.Namespace) -> int:
    from training.gan.combine import run_combine

    run_combine(parse(GanCombineOptions, args))
    return 0
