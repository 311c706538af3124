"""The `gpu-train` verb: train a job packed by `gpu-job`, on Keras's JAX backend (run.sh calls it).

Its options are `GpuTrainOptions` (training/classifier/config.py); `run` hands them to
`training.gpu_job.run_gpu_train`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.config import GpuTrainOptions
from training.options import add_options, parse

HELP = "train a job packed by gpu-job (on the GPU machine; KERAS_BACKEND=jax)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, GpuTrainOptions)


def run(args: argparse.Namespace) -> int:
    from training.gpu_job import run_gpu_train

    run_gpu_train(parse(GpuTrainOptions, args))
    return 0
