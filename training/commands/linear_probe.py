"""The `linear-probe` verb: logistic regression on frozen ImageNet features (the floor), as a bundle.

Its options are `LinearProbeOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.linear_probe.run_linear_probe`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import LinearProbeOptions
from training.options import add_options, parse

HELP = "logistic regression on frozen ImageNet features (the floor), as a bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, LinearProbeOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.linear_probe import run_linear_probe

    run_linear_probe(parse(LinearProbeOptions, args))
    return 0
