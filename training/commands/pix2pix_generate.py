"""The `pix2pix-generate` verb: fundus photographs from vessel masks, in a chosen colour style.

Its options are `Pix2PixGenerateOptions` (training/pix2pix/config.py); `run` hands them to
`training.pix2pix.generate.run_pix2pix_generate`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.options import add_options, parse
from training.pix2pix.config import Pix2PixGenerateOptions

HELP = "fundus photographs from vessel masks, in a chosen colour style"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Pix2PixGenerateOptions)


def run(args: argparse.Namespace) -> int:
    from training.pix2pix.generate import run_pix2pix_generate

    run_pix2pix_generate(parse(Pix2PixGenerateOptions, args))
    return 0
