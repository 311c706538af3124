"""The `evaluate` verb: metrics, calibration and plots on a split.

Its options are `EvaluateOptions` (training/evaluation/config.py); `run` hands them to
`training.evaluation.evaluate.run_evaluate`, imported only when the verb is chosen, and prints
the metrics object with `--json`.
"""

from __future__ import annotations

import argparse
import json

from training.evaluation.config import EvaluateOptions
from training.options import add_options, parse

HELP = "metrics, calibration and plots on a split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, EvaluateOptions)


def run(args: argparse.Namespace) -> int:
    from training.evaluation.evaluate import run_evaluate

    options = parse(EvaluateOptions, args)
    metrics = run_evaluate(options)
    if options.json:
        print(json.dumps(metrics))
    return 0
