"""The `familiarity` verb: fit a model's unfamiliar-image flag on its training split; measure it.

Its options are `FamiliarityOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.familiarity.run_familiarity`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import FamiliarityOptions
from training.options import add_options, parse

HELP = "fit a model's unfamiliar-image flag on its training split; measure it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, FamiliarityOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.familiarity import run_familiarity

    run_familiarity(parse(FamiliarityOptions, args))
    return 0
