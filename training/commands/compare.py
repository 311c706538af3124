"""The `compare` verb: one markdown table of several models: test split, per source, external set.

Its options; `run` hands them to `training.experiments.compare.run_compare`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "one markdown table of several models: test split, per source, external set"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--row", action="append", required=True, nargs="+", metavar="ITEM",
                        help="NAME TEST_METRICS.json[,EXTERNAL_METRICS.json] [more seeds ...] (repeatable)")
    parser.add_argument("--out", help="markdown file to write (default: print)")


def run(args) -> int:
    from training.experiments.compare import run_compare

    return run_compare(args)
