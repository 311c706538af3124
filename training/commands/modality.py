"""The `modality` verb: train the fundus / OCT / other check model.

Its options are `ModalityOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.modality.run_modality`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import ModalityOptions
from training.options import add_options, parse

HELP = "train the fundus / OCT / other check model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ModalityOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.modality import run_modality

    run_modality(parse(ModalityOptions, args))
    return 0
