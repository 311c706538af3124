"""The `gan-curve` verb: issue #36's learning curve. Does GAN data help the shipped fundus recipe
when a class has few real images?

Its options; `run` hands them to `training.experiments.gan_curve.run_gan_curve`, imported only
when the verb is chosen.
"""

from __future__ import annotations

import argparse

HELP = "learning curve: real / traditional / GAN / both at 25, 50, 100, all real images of a scarce class"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="fundus folder of class sub-folders + splits.csv")
    parser.add_argument("--out", required=True, help="run folder (generators, features, fits); a re-run resumes")
    parser.add_argument("--scarce", default="glaucoma,cataract", help="classes to cut, one curve each")
    parser.add_argument("--points", default="25,50,100,all", help="real training images of the class per point")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the added images per condition")
    parser.add_argument("--added", type=int, default=250, help="images each condition but 'real' adds")
    parser.add_argument("--base-epochs", type=int, default=8, help="epochs of the base GAN (from random weights)")
    parser.add_argument("--finetune-steps", type=int, default=300, help="steps of each point's one-class fine-tune")
    parser.add_argument("--shipped-generator", default="models/generator.keras",
                        help="also add this generator's images at the point of every real image ('' for none); "
                             "refused unless its record shows it learnt from exactly the train split's images")
    parser.add_argument("--report", help="folder for report.md, curves.png and summary.json (default: --out)")


def run(args) -> int:
    from training.experiments.gan_curve import run_gan_curve

    return run_gan_curve(args)
