"""The `card` verb: render a markdown model card from a model's sidecar.

Its options are `CardOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.model_card.run_card`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import CardOptions
from training.options import add_options, parse

HELP = "render a markdown model card from a model's sidecar"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, CardOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.model_card import run_card

    run_card(parse(CardOptions, args))
    return 0
