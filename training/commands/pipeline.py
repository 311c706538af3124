"""The `pipeline` verb: the GAN-augmentation experiment: train classifiers under four conditions, report.

Its options are `PipelineOptions` (training/experiments/config.py); `run` hands them to
`training.experiments.pipeline.run_pipeline`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.experiments.config import PipelineOptions
from training.options import add_options, parse

HELP = "the GAN-augmentation experiment: train classifiers under four conditions, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PipelineOptions)


def run(args: argparse.Namespace) -> int:
    from training.experiments.pipeline import run_pipeline

    run_pipeline(parse(PipelineOptions, args))
    return 0
