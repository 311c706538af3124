"""The `gpu-job` verb: pack a `classify` run to train on a GPU machine without TensorFlow or data.

Its options are `GpuJobOptions` (`classify`'s, the run to pack, and `--no-wheels`;
training/classifier/config.py); `run` hands them to `training.gpu_job.run_gpu_job`, imported
only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import GpuJobOptions
from training.options import add_options, parse

HELP = "pack a classify run (images, settings, wheels, run.sh) for a GPU machine with JAX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GpuJobOptions)


def run(args: argparse.Namespace) -> int:
    from training.gpu_job import run_gpu_job

    run_gpu_job(parse(GpuJobOptions, args))
    return 0
