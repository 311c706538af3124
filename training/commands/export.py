"""The `export` verb: compile models to LiteRT for the app's TensorFlow-free path.

Its options; `run` hands them to `training.classifier.export.run_export`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "compile models to LiteRT for the app's TensorFlow-free path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, action="append", help="model file (repeatable)")
    parser.add_argument("--out", help="folder for the compiled bundle (default: beside each model)")
    parser.add_argument("--trust-model", action="store_true")


def run(args) -> int:
    from training.classifier.export import run_export

    return run_export(args)
