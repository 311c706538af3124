"""The `synthesize` verb: write N images of one class from a generator.

Its options are `SynthesizeOptions` (training/gan/config.py); `run` hands them to
`training.gan.synthesize.run_synthesize`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.gan.config import SynthesizeOptions
from training.options import add_options, parse

HELP = "write N images of one class from a generator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, SynthesizeOptions)


def run(args: argparse.Namespace) -> int:
    from training.gan.synthesize import run_synthesize

    run_synthesize(parse(SynthesizeOptions, args))
    return 0
