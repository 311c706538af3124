"""The `fov-figure` verb: photographs before and after field-of-view standardisation, side by side.

Its options; `run` hands them to `training.experiments.fov_figure.run_fov_figure`, imported only when
the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import count

HELP = "photographs before and after field-of-view standardisation, side by side"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", required=True,
                        help="data set folder with splits.csv (repeatable); one image per source (or per set)")
    parser.add_argument("--per-source", type=count(1, 1000), default=2, help="images per source")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from training.experiments.fov_figure import run_fov_figure

    return run_fov_figure(args)
