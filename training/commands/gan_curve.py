"""The `gan-curve` verb: issue #36's learning curve. Does GAN data help the shipped fundus or OCT
recipe when a class has few real images?

Its options; `run` hands them to `training.experiments.gan_curve.run_gan_curve`, imported only
when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "learning curve: real / traditional / GAN / both at 25, 50, ..., all real images of a scarce class"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of class sub-folders + splits.csv")
    parser.add_argument("--out", required=True, help="run folder (generators, features, fits); a re-run resumes")
    parser.add_argument("--modality", choices=("fundus", "oct"), default="fundus",
                        help="whose recipe: fundus (frozen-feature head) or oct (confirmed with the shipped OCT "
                             "CNN's recipe); it sets the defaults below")
    parser.add_argument("--scarce", help="classes to cut, one curve each (fundus: glaucoma,cataract; oct: DME)")
    parser.add_argument("--points", help="real training images of the class per point (fundus: 25,50,100,all; "
                                         "oct: 25,50,all)")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the added images per condition")
    parser.add_argument("--added", type=int, default=250, help="images each condition but 'real' adds")
    parser.add_argument("--base-epochs", type=int,
                        help="epochs of the base GAN, from random weights (fundus 8, oct 100)")
    parser.add_argument("--finetune-steps", type=int, help="steps of each point's one-class fine-tune (300)")
    parser.add_argument("--shipped-generator",
                        help="also add this generator's images at the point of every real image ('' for none; "
                             "default models/generator.keras or models/oct/generator.keras); refused unless its "
                             "record shows it learnt from exactly the train split's images")
    parser.add_argument("--report", help="folder for report.md, curves.png and summary.json (default: --out)")


def run(args) -> int:
    from training.experiments.gan_curve import run_gan_curve

    return run_gan_curve(args)
