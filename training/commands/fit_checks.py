"""The `fit-checks` verb: fit image-check thresholds on validation images.

Its options are `FitChecksOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.fit_checks.run_fit_checks`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import FitChecksOptions
from training.options import add_options, parse

HELP = "fit image-check thresholds on validation images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, FitChecksOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.fit_checks import run_fit_checks

    run_fit_checks(parse(FitChecksOptions, args))
    return 0
