"""Prints how fast `classify` trains a batch on this machine's Keras backend.

    python benchmarks/train_step.py [--architecture efficientnet-lite0] [--size 192] [--batch-size 32]
    KERAS_BACKEND=jax python benchmarks/train_step.py ...

The default fundus recipe's trainer (ImageNet EfficientNet-Lite0 at 192 px, its first five blocks
and every batch norm frozen, augmentation in front), fed random batches of the recipe's size
through `train_on_batch`: the training step alone, without the data pipeline or validation.
Run it once per backend to compare them (issue #35: JAX no slower than TensorFlow on this CPU;
a GPU >= 20x this CPU).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import summary, timed  # noqa: E402  (benchmarks/, beside this script)


def main() -> int:
    from retina_desktop.core.quiet import import_keras, keras_backend
    from retina_desktop.imaging.augmentation import default_config
    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import build_trainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="efficientnet-lite0")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frozen-blocks", type=int, default=5)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    keras = import_keras()
    config = ClassifierConfig(architecture=args.architecture, height=args.size, width=args.size,
                              batch_size=args.batch_size, frozen_blocks=args.frozen_blocks,
                              augment=not args.no_augment, weights="imagenet" if "lite" in args.architecture else None)
    start = time.perf_counter()
    trainer, _ = build_trainer(config, 4, default_config("fundus"))
    built = time.perf_counter() - start
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch_size, args.size, args.size, 3)).astype("float32")
    y = np.eye(4, dtype="float32")[rng.integers(0, 4, args.batch_size)]
    start = time.perf_counter()
    trainer.train_on_batch(x, y)  # traces and compiles the step
    first = time.perf_counter() - start
    times = timed(lambda: trainer.train_on_batch(x, y), args.repeat)
    per_batch = float(np.median(times))
    print(f"backend {keras_backend()} (keras {keras.__version__}), {args.architecture} {args.size} px, "
          f"batch {args.batch_size}, frozen blocks {args.frozen_blocks}")
    print(f"build {built:.1f} s, first step (compile) {first:.1f} s")
    print(f"train step: {summary(times)}   {args.batch_size / per_batch:.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
