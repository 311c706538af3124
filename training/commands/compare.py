"""The `compare` verb: one markdown table of several models: test split, per source, external set.

Its options are `CompareOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.compare.run_compare`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import CompareOptions
from training.options import add_options, parse

HELP = "one markdown table of several models: test split, per source, external set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, CompareOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.compare import run_compare

    run_compare(parse(CompareOptions, args))
    return 0
