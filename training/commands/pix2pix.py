"""The `pix2pix` verb: train the vessel-mask -> fundus-photograph generator (pix2pix).

Its options; `run` hands them to `training.pix2pix.train.run_pix2pix`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.pix2pix.config import Pix2PixConfig

HELP = "train the vessel-mask -> fundus-photograph generator (pix2pix)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Pix2PixConfig()
    parser.add_argument("--pairs", required=True, nargs="+", metavar="DIR",
                        help="pairs folders, each with image/, vessels/ (same file names) and optionally fov/")
    parser.add_argument("--styles", help="comma-separated style names, one per --pairs folder "
                        "(default: each folder's name, or its parent's for train/test/... folders)")
    parser.add_argument("--out", required=True, help="output folder for the generator, samples and log")
    parser.add_argument("--size", type=int, default=defaults.size,
                        help="image side; masks and photos are stretched to size x size")
    parser.add_argument("--width", type=int, default=defaults.width, help="generator channels after the first halving")
    parser.add_argument("--levels", type=int, default=defaults.levels,
                        help="U-Net halvings (size must be a multiple of 2^levels)")
    parser.add_argument("--max-channels", type=int, default=defaults.max_channels)
    parser.add_argument("--d-width", type=int, default=defaults.d_width,
                        help="discriminator channels of its first layer")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--decay-from", type=float, default=defaults.decay_from,
                        help="fraction of training after which the learning rate falls linearly to 0")
    parser.add_argument("--l1-weight", type=float, default=defaults.l1_weight)
    parser.add_argument("--outside-weight", type=float, default=defaults.outside_weight,
                        help="L1 weight outside the field of view (inside: 1)")
    parser.add_argument("--keep-colour", action="store_true",
                        help="train on the photographs' own colours instead of evening each one out to its "
                             "style's mean colour (the mask says nothing about exposure)")
    parser.add_argument("--rotate", type=float, default=defaults.rotate_degrees, help="max rotation, degrees")
    parser.add_argument("--zoom", type=float, default=defaults.zoom, help="max zoom, e.g. 0.08 for x/1.08 to x1.08")
    parser.add_argument("--vflip", action="store_true", help="also flip upside down (left-right flips are on)")
    parser.add_argument("--no-augment", action="store_true", help="no flips, rotations or zooms")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--distribute", action="store_true",
                        help="data parallel over every local device (KERAS_BACKEND=jax): each --batch-size batch is "
                             "split across them; checkpoints and --resume as on one device")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)


def run(args) -> int:
    from training.pix2pix.train import run_pix2pix

    return run_pix2pix(args)
