"""The `classify` verb: train a classifier and write its bundle.

Its options are `ClassifyOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.classify.run_classify`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import ClassifyOptions
from training.options import add_options, parse

HELP = "train a classifier and write its bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ClassifyOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.classify import run_classify

    run_classify(parse(ClassifyOptions, args))
    return 0
