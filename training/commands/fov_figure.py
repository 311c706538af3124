"""The `fov-figure` verb: photographs before and after field-of-view standardisation, side by side.

Its options are `FovFigureOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.fov_figure.run_fov_figure`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import FovFigureOptions
from training.options import add_options, parse

HELP = "photographs before and after field-of-view standardisation, side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, FovFigureOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.fov_figure import run_fov_figure

    run_fov_figure(parse(FovFigureOptions, args))
    return 0
