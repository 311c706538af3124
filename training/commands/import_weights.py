"""The `import-weights` verb: convert EfficientNet-Lite ImageNet weights (PyTorch .pth) to Keras.

Its options are `ImportWeightsOptions` (training/classifier/config.py); `run` hands them to
`training.classifier.import_weights.run_import_weights`, imported only when the verb is chosen,
and exits 1 when the converted weights fail their self-check.
"""

from __future__ import annotations

import argparse

from training.classifier.config import ImportWeightsOptions
from training.options import add_options, parse

HELP = "convert EfficientNet-Lite ImageNet weights (PyTorch .pth) to Keras"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, ImportWeightsOptions)


def run(args: argparse.Namespace) -> int:
    from training.classifier.import_weights import run_import_weights

    converted = run_import_weights(parse(ImportWeightsOptions, args))
    # Moved features under ImageNet's own head need not name the cat; converted ones must.
    return 0 if converted.passed_self_check else 1
