"""The `gan-eval` verb: KID, FID, precision/recall and memorisation of a generator.

Its options; `run` hands them to `training.gan.metrics.run_gan_eval`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import MAX_IMAGES, count

HELP = "KID, FID, precision/recall and memorisation of a generator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generator", required=True, nargs="+",
                        help="one generator, or several (say, a run's generators/epoch_*.keras) to compare on "
                        "one set of real features; the first is the baseline of the table")
    parser.add_argument("--data", required=True, help="the data set it was trained on (train and test splits)")
    parser.add_argument("--labels", help="comma-separated classes to judge (default: all the generator's)")
    parser.add_argument("--classifier", help="feature extractor (default: the app's models/keras_model.h5)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--fit", choices=("crop", "pad", "stretch", "fov"),
                        help="how real images are fitted to the generator's square (default: its sidecar's, else crop)")
    parser.add_argument("--n", type=count(1, MAX_IMAGES), default=200, help="synthetic images per class")
    parser.add_argument("--k", type=count(1, 1000), default=3, help="neighbours for precision/recall")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for gan_eval.json and the closest pairs (default: beside the generator; "
                        "with several, a sub-folder each)")
    parser.add_argument("--json", action="store_true", help="print the metrics object only")


def run(args) -> int:
    from training.gan.metrics import run_gan_eval

    return run_gan_eval(args)
