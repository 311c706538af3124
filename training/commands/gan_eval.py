"""The `gan-eval` verb: KID, FID, precision/recall and memorisation of a generator.

Its options are `GanEvalOptions` (training/gan/config.py); `run` hands them to
`training.gan.metrics.run_gan_eval`, imported only when the verb is chosen, and prints the
metrics object with `--json`.
"""

from __future__ import annotations

import argparse
import json

from training.gan.config import GanEvalOptions
from training.options import add_options, parse

HELP = "KID, FID, precision/recall and memorisation of a generator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GanEvalOptions)


def run(args: argparse.Namespace) -> int:
    from training.gan.metrics import run_gan_eval

    options = parse(GanEvalOptions, args)
    summary = run_gan_eval(options)
    if options.json:
        print(json.dumps(summary, indent=1))
    return 0
