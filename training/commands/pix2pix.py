"""The `pix2pix` verb: train the vessel-mask -> fundus-photograph generator (pix2pix).

Its options are `Pix2PixOptions` (training/pix2pix/config.py); `run` hands them to
`training.pix2pix.train.run_pix2pix`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.options import add_options, parse
from training.pix2pix.config import Pix2PixOptions

HELP = "train the vessel-mask -> fundus-photograph generator (pix2pix)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Pix2PixOptions)


def run(args: argparse.Namespace) -> int:
    from training.pix2pix.train import run_pix2pix

    run_pix2pix(parse(Pix2PixOptions, args))
    return 0
