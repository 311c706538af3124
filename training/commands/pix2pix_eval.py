"""The `pix2pix-eval` verb: MSE, SSIM and PSNR of a pix2pix generator on pairs it never trained on.

Its options; `run` hands them to `training.pix2pix.evaluate.run_pix2pix_eval`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "MSE, SSIM and PSNR of a pix2pix generator on pairs it never trained on"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="generator.keras (with generator.json beside it)")
    parser.add_argument("--pairs", required=True,
                        help="pairs folder the generator never trained on (image/, vessels/, fov/)")
    parser.add_argument("--style", help="colour style to draw in (default: the folder's, e.g. drive/test -> drive)")
    parser.add_argument("--out", help="folder for pix2pix_eval.json/.csv and the figure (default: beside the model)")
    parser.add_argument("--json", action="store_true",
                        help='print only {"n", "mse", "ssim", "psnr", "mse_whole", "ssim_whole", "psnr_whole"}')
    parser.add_argument("--store-metrics", action="store_true", help="also write the means into the model's sidecar")


def run(args) -> int:
    from training.pix2pix.evaluate import run_pix2pix_eval

    return run_pix2pix_eval(args)
