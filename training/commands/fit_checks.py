"""The `fit-checks` verb: fit image-check thresholds on validation images.

Its options; `run` hands them to `training.classifier.fit_checks.run_fit_checks`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "fit image-check thresholds on validation images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="the model's data set (train and val fit, test reports)")
    parser.add_argument("--other-modality", help="a data set of the other modality, to report confusion")
    parser.add_argument("--percentile", type=float, default=0.0,
                        help="where each limit sits in the fitting photographs' tail (default 0: at the least "
                             "value any of them has, so that only a photograph worse than every one the graders "
                             "kept is refused)")
    parser.add_argument("--fit-splits", default="train,val",
                        help="the splits whose photographs set the limits (default train,val: a far tail needs "
                             "thousands, not the 650 of val alone)")
    parser.add_argument("--wrong-inputs", help="folder of wrong-input kinds: report the test part refused per kind")
    parser.add_argument("--external", action="append", default=[], metavar="DIR",
                        help="a data set from cameras never trained on (repeatable): report every image refused "
                             "(all are real photographs; nothing is fitted on it)")


def run(args) -> int:
    from training.classifier.fit_checks import run_fit_checks

    return run_fit_checks(args)
