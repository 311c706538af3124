"""The `export` verb: compile models to LiteRT for the app's TensorFlow-free path.

Its options are `ExportOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.export.run_export`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import ExportOptions
from training.options import add_options, parse

HELP = "compile models to LiteRT for the app's TensorFlow-free path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ExportOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.export import run_export

    run_export(parse(ExportOptions, args))
    return 0
