"""The `gan-combine` verb: one generator file in which chosen classes are drawn by their own
generators (a scarce class fine-tuned alone with `gan --labels CLASS --init-generator ...`).

Its options; `run` hands them to `training.gan.combine.run_combine`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "join generators into one: each class drawn by the generator chosen for it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True,
                        help="the base generator.keras: its classes, and every class not given with --class")
    parser.add_argument("--class", dest="class_generators", action="append", required=True, metavar="CLASS=GENERATOR",
                        help="draw CLASS with GENERATOR.keras (which must know CLASS); repeat for more classes")
    parser.add_argument("--out", required=True, help="the combined generator.keras (its sidecar is written beside it)")


def run(args) -> int:
    from training.gan.combine import run_combine

    return run_combine(args)
