"""The `pix2pix-eval` verb: MSE, SSIM and PSNR of a pix2pix generator on pairs it never trained on.

Its options are `Pix2PixEvalOptions` (training/pix2pix/config.py); `run` hands them to
`training.pix2pix.evaluate.run_pix2pix_eval`, imported only when the verb is chosen, and prints
the headline figures with `--json`.
"""

from __future__ import annotations

import argparse
import json

from training.options import add_options, parse
from training.pix2pix.config import Pix2PixEvalOptions

HELP = "MSE, SSIM and PSNR of a pix2pix generator on pairs it never trained on"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, Pix2PixEvalOptions)


def run(args: argparse.Namespace) -> int:
    from training.pix2pix.evaluate import headline, run_pix2pix_eval

    options = parse(Pix2PixEvalOptions, args)
    report = run_pix2pix_eval(options)
    if options.json:
        print(json.dumps(headline(report)))
    return 0
