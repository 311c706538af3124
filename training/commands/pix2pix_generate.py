"""The `pix2pix-generate` verb: fundus photographs from vessel masks, in a chosen colour style.

Its options; `run` hands them to `training.pix2pix.generate.run_pix2pix_generate`, imported only when
the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "fundus photographs from vessel masks, in a chosen colour style"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="generator.keras (with generator.json beside it)")
    parser.add_argument("--mask", required=True, nargs="+", metavar="PATH",
                        help="vessel mask files (white vessels on black), folders of them, or pairs folders")
    parser.add_argument("--fov", help="field-of-view mask for a single --mask (default: a centred disc)")
    parser.add_argument("--style", help="colour style (one the generator learned; required if it knows several)")
    parser.add_argument("--out", required=True, help="output folder, or a .png file for a single mask")
    parser.add_argument("--grid", metavar="PNG",
                        help="also draw a figure: per mask (at most 6), the mask, the image in every style the "
                             "generator knows, and the mask's own photograph when a pairs folder has one")


def run(args) -> int:
    from training.pix2pix.generate import run_pix2pix_generate

    return run_pix2pix_generate(args)
