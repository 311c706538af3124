"""The `card` verb: render a markdown model card from a model's sidecar.

Its options; `run` hands them to `training.classifier.model_card.run_card`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "render a markdown model card from a model's sidecar"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True, help="markdown file to write")
    parser.add_argument("--intended-use", required=True)
    parser.add_argument("--limitation", action="append", help="a known limitation (repeatable)")


def run(args) -> int:
    from training.classifier.model_card import run_card

    return run_card(args)
