"""The `evaluate` verb: metrics, calibration and plots on a split.

Its options; `run` hands them to `training.classifier.evaluate.run_evaluate`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import MAX_IMAGES, count

HELP = "metrics, calibration and plots on a split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", choices=("train", "val", "test", "all"),
                        help="which images to judge (default: test when the folder has a splits.csv, else all of "
                        "them: an external set such as messidor2). Referable diabetic retinopathy (ICDR grade >= 2) "
                        "is reported when the data gives grades: a grade column in splits.csv or a grades.csv "
                        "(file,grade[,group])")
    parser.add_argument("--out", help="folder for metrics.json and plots")
    parser.add_argument("--json", action="store_true", help="print the metrics object only")
    parser.add_argument("--store-temperature", action="store_true",
                        help="write the fitted temperature into the model's sidecar")
    parser.add_argument("--bootstrap", type=count(0, 100_000), default=1000)
    parser.add_argument("--trust-model", action="store_true")
    parser.add_argument("--source", action="append", metavar="NAME=REGEX",
                        help="also report each class's sensitivity for the files whose path matches REGEX "
                        "(repeatable; e.g. ODIR='/\\d+_(left|right)\\.jpg$')")
    parser.add_argument("--heatmaps", type=count(0, MAX_IMAGES), default=200, metavar="N",
                        help="fundus models: Grad-CAM of the reported class on N images of the split (seeded "
                        "sample) and the share of its mass inside the fundus field of view, median and 10th "
                        "percentile (default 200; 0 skips it; about 0.03 s per image on a 2-core CPU)")
    parser.add_argument("--normal-class", default="normal", metavar="CLASS",
                        help="the model's healthy class: each disease present in the data is reported against "
                        "it on those two classes' images (AUC, sensitivity, referred, specificity)")
    parser.add_argument("--store-external", nargs="?", const="", metavar="NAME",
                        help="store these figures in the model's sidecar under metrics.external.NAME (default "
                        "NAME: the data folder's name) with this command, for the model card's External data "
                        "table; for data sets the model never trained on (--data ../shared/data/fundus-external); "
                        "the test-split figures and the temperature are left as they are")


def run(args) -> int:
    from training.classifier.evaluate import run_evaluate

    return run_evaluate(args)
