"""The `gan` verb: train the class-conditional GAN on a data set's training split.

Its options; `run` hands them to `training.gan.train.run_gan`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import count

HELP = "train the class-conditional GAN on a data set's training split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of class sub-folders (+ splits.csv)")
    parser.add_argument("--out", required=True, help="output folder for the generator, samples and log")
    parser.add_argument("--labels", help="comma-separated classes to learn (default: all)")
    parser.add_argument("--modality", choices=("fundus", "oct", "unknown"), default="fundus")
    parser.add_argument("--size", type=int, default=128, help="image height and width (a power of two)")
    parser.add_argument("--fit", choices=("crop", "pad", "stretch", "fov"), default="crop",
                        help="how images become squares: fov (fundus photographs: the circle of the eye "
                             "centred, black outside, as the classifier sees them), crop, or stretch (OCT "
                             "B-scans, shown at their own proportions again in the app)")
    parser.add_argument("--latent-dim", type=int, default=128)
    parser.add_argument("--width", type=int, default=16, help="channels at full resolution")
    parser.add_argument("--d-width", type=int, default=0,
                        help="the discriminator's channels at full resolution (default: --width)")
    parser.add_argument("--epochs", type=count(1, 100_000), default=100)
    parser.add_argument("--batch-size", type=count(1, 65_536), default=16)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--d-learning-rate", type=float,
                        help="the discriminator's own learning rate (default: --learning-rate); a faster "
                             "discriminator than generator is the two time-scale rule (TTUR)")
    parser.add_argument("--loss", choices=("hinge", "nonsaturating"), default="hinge")
    parser.add_argument("--r1-gamma", type=float, default=0.0)
    parser.add_argument("--d-norm", choices=("spectral", "none"), default="spectral",
                        help="the discriminator's layers spectrally normalised (SN-GAN), or not "
                             "(StyleGAN2-ADA: then give --r1-gamma)")
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--augment", default="color,translation,cutout", help="DiffAugment policy ('' for none)")
    parser.add_argument("--ada-target", type=float, default=0.6,
                        help="adapt the augment probability towards this E[sign(D(real))] (ADA); 0: always augment")
    parser.add_argument("--data-mix", action="store_true",
                        help="draw classes in the data's own proportions, not equally often")
    parser.add_argument("--init-generator",
                        help="start the generator from this trained generator (.keras, same classes, size and "
                             "--width) instead of random weights: fine-tuning it on --data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-generators", action="store_true",
                        help="also write each epoch's generator to generators/epoch_NNNN.keras, to choose one "
                        "with gan-eval --split val")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--distribute", action="store_true",
                        help="data parallel over every local device (KERAS_BACKEND=jax): each --batch-size batch is "
                             "split across them; checkpoints and --resume as on one device")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)


def run(args) -> int:
    from training.gan.train import run_gan

    return run_gan(args)
