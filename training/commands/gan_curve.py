"""The `gan-curve` verb: issue #36's learning curve. Does GAN data help the shipped fundus or OCT
recipe when a class has few real images?

Its options are `GanCurveOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.gan_curve.run_gan_curve`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import GanCurveOptions
from training.options import add_options, parse

HELP = "learning curve: real / traditional / GAN / both at 25, 50, ..., all real images of a scarce class"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GanCurveOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.gan_curve import run_gan_curve

    run_gan_curve(parse(GanCurveOptions, args))
    return 0
