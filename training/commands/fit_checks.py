"""The `fit-checks` verb: fit image-check thresholds on validation images.

Its options; `run` hands them to `training.classifier.fit_checks.run_fit_checks`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "fit image-check thresholds on validation images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="the model's data set (val split fits, test reports)")
    parser.add_argument("--other-modality", help="a data set of the other modality, to report confusion")
    parser.add_argument("--percentile", type=float, default=0.1)
    parser.add_argument("--wrong-inputs", help="folder of wrong-input kinds: report the test part refused per kind")


def run(args) -> int:
    from training.classifier.fit_checks import run_fit_checks

    return run_fit_checks(args)
