"""The `screening-probe` verb: the screening fundus model (frozen pooled features, a head chosen on
validation, a referral threshold), as a bundle.

Its options are `ScreeningProbeOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.screening.run_screening_probe`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import ScreeningProbeOptions
from training.options import add_options, parse

HELP = "screening fundus model: frozen pooled features + a head chosen on val, with a referral threshold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ScreeningProbeOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.screening import run_screening_probe

    run_screening_probe(parse(ScreeningProbeOptions, args))
    return 0
