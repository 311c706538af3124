"""The `modality` verb: train the fundus / OCT / other check model.

Its options; `run` hands them to `training.classifier.modality.run_modality`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "train the fundus / OCT / other check model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fundus", required=True, help="fundus data set (class folders + splits)")
    parser.add_argument("--oct", required=True, help="OCT data set (class folders + splits)")
    parser.add_argument("--extra-fundus", action="append", help="folder of more fundus photos (train only)")
    parser.add_argument("--wrong-inputs", help="folder of wrong-input kinds (angiograms, ...) taught as other")
    parser.add_argument("--camera-variants", type=int, default=0, metavar="N",
                        help="also teach N fundus photographs of each split as other cameras frame and expose "
                        "them (3:2 clipped field, wide frame, bright, dark, warm), as fundus")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")


def run(args) -> int:
    from training.classifier.modality import run_modality

    return run_modality(args)
