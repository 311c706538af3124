"""The `familiarity` verb: fit a model's unfamiliar-image flag on its training split; measure it.

Its options; `run` hands them to `training.classifier.familiarity.run_familiarity`, imported only when
the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.classifier.familiarity import PERCENTILE

HELP = "fit a model's unfamiliar-image flag on its training split; measure it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the model file (keras_model.h5)")
    parser.add_argument("--data", required=True,
                        help="the model's data set (splits.csv): train fits, val sets the threshold, test reports")
    parser.add_argument("--external", action="append", default=[], metavar="DIR",
                        help="a labelled data set the model never trained on (repeatable; e.g. "
                        "../shared/data/fundus-external): error rate of flagged vs unflagged images")
    parser.add_argument("--wrong", action="append", default=[], metavar="DIR",
                        help="a folder of images the model should not read (repeatable; e.g. "
                        "../shared/data/wrong-inputs): the share flagged, per sub-folder")
    parser.add_argument("--percentile", type=float, default=PERCENTILE,
                        help="flag above this percentile of the validation distances (default 97.5)")
    parser.add_argument("--components", type=int, default=128,
                        help="principal components of the unit-length features kept (the stored file's size)")
    parser.add_argument("--neighbours", type=int, default=10,
                        help="the distance is to this nearest training image (default: the 10th)")
    parser.add_argument("--trust-model", action="store_true")


def run(args) -> int:
    from training.classifier.familiarity import run_familiarity

    return run_familiarity(args)
