"""The `gan` verb: train the class-conditional GAN on a data set's training split.

Its options are `GanOptions` (training/gan/config.py); `run` hands them to
`training.gan.train.run_gan`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.gan.config import GanOptions
from training.options import add_options, parse

HELP = "train the class-conditional GAN on a data set's training split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GanOptions)


def run(args: argparse.Namespace) -> int:
    from training.gan.train import run_gan

    run_gan(parse(GanOptions, args))
    return 0
