"""The `gpu-train` verb: train a job packed by `gpu-job`, on Keras's JAX backend (run.sh calls it).

Its options; `run` hands them to `training.gpu_job.train_job`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "train a job packed by gpu-job (on the GPU machine; KERAS_BACKEND=jax)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job", required=True, help="the folder gpu-job wrote")
    parser.add_argument("--out", required=True, help="folder for the bundle, checkpoints and speed.json")
    parser.add_argument("--distribute", action="store_true", help="data parallel over every local device")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--bring-back", metavar="DIR",
                        help="also copy the bundle and speed.json (not the checkpoints) to DIR, the folder that "
                             "travels back from the machine")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)


def run(args) -> int:
    from pathlib import Path

    from training.gpu_job import train_job

    train_job(Path(args.job), Path(args.out), distribute=args.distribute, resume=args.resume,
              stop_after_epochs=args.stop_after, bring_back=Path(args.bring_back) if args.bring_back else None)
    return 0
