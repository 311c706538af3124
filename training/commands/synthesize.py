"""The `synthesize` verb: write N images of one class from a generator.

Its options; `run` hands them to `training.gan.synthesize.run_synthesize`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import MAX_IMAGES, count

HELP = "write N images of one class from a generator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True, help="generator.keras (with generator.json beside it)")
    parser.add_argument("--label", required=True)
    parser.add_argument("--n", type=count(1, MAX_IMAGES), required=True,
                        help=f"images to write (at most {MAX_IMAGES:,})")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from training.gan.synthesize import run_synthesize

    return run_synthesize(args)
