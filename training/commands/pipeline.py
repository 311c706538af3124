"""The `pipeline` verb: the GAN-augmentation experiment: train classifiers under four conditions, report.

Its options; `run` hands them to `training.experiments.pipeline.run_pipeline`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from training.bounds import MAX_IMAGES, count
from training.experiments.runs import CLASSIFIERS, CONDITIONS, CORE_CONDITIONS, PipelineConfig

HELP = "the GAN-augmentation experiment: train classifiers under four conditions, report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `pipeline` verb's options."""
    d = PipelineConfig(data="", scarce=())
    add = parser.add_argument
    add("--data", help="folder of class sub-folders (+ splits.csv); required unless --report-only")
    add("--out", required=True, help="run folder: every run, the GANs, the synthetic images, the report")
    add("--scarce", help="comma-separated scarce classes, e.g. glaucoma,cataract")
    add("--scarce-n", type=int, default=d.scarce_n, help="training images kept per scarce class in the cut setting")
    add("--cut-seed", type=int, default=d.cut_seed, help="seed of the draw of the cut setting's images")
    add("--settings", default=",".join(d.settings), help="which of cut,full to run")
    add("--conditions", default=",".join(d.conditions),
        help="which of " + ",".join(CONDITIONS) + " to run (default: " + ",".join(CORE_CONDITIONS) + "; "
             "the filtered ones keep the GAN images a classifier of real images finds most like their class)")
    add("--seeds", default=",".join(map(str, d.seeds)), help="classifier seeds, comma-separated")
    add("--modality", choices=("fundus", "oct", "unknown"), default=d.modality,
        help="chooses the traditional augmentation's settings")
    add("--classifier", choices=CLASSIFIERS, default=d.classifier,
        help="small: the project's CNN trained end to end; frozen-lite0: ImageNet EfficientNet-Lite0 features "
             "and a softmax head (minutes per run instead of an hour)")
    add("--views", type=count(1, 1000), default=d.views,
        help="frozen-lite0: augmented views of each training image in the traditional conditions")
    add("--size", type=int, default=d.size, help="classifier input height and width")
    add("--fit", choices=("crop", "pad", "stretch", "fov"), default=d.fit, help="how images are fitted (GAN too)")
    add("--width-multiplier", type=float, default=d.width_multiplier, help="channels of the small classifier")
    add("--epochs", type=int, default=d.epochs, help="classifier epochs (early stopping on val macro AUC)")
    add("--batch-size", type=int, default=d.batch_size)
    add("--learning-rate", type=float, default=d.learning_rate)
    add("--patience", type=int, default=d.patience)
    add("--no-class-weights", action="store_true", help="no balanced class weights in the loss")
    add("--gan-size", type=int, default=d.gan_size, help="GAN image size (a power of two)")
    add("--gan-width", type=int, default=d.gan_width, help="GAN channels at full resolution")
    add("--gan-latent-dim", type=int, default=d.gan_latent_dim)
    add("--gan-epochs", type=int, default=d.gan_epochs,
        help="epochs of the cut setting's GAN; the full setting's GAN takes as many steps (fewer epochs)")
    add("--gan-batch-size", type=int, default=d.gan_batch_size)
    add("--gan-loss", choices=("hinge", "nonsaturating"), default=d.gan_loss)
    add("--gan-r1-gamma", type=float, default=d.gan_r1_gamma,
        help="R1 penalty on the discriminator (0: off); with --gan-loss nonsaturating, StyleGAN2-ADA's recipe")
    add("--gan-classes", choices=("all", "scarce"), default=d.gan_classes,
        help="classes the GAN learns (all: scarce classes borrow from the others)")
    add("--gan-target", type=count(0, MAX_IMAGES), default=d.gan_target,
        help="images per scarce class after topping up (default: the largest class's count)")
    add("--gan-full", default=d.gan_full,
        help="a generator already trained on the whole train split (same classes, size and fit) to use as the "
             "full setting's GAN, e.g. the shipped models/generator.keras")
    add("--external", default=d.external,
        help="another camera's data set (e.g. ../shared/data/fundus-external) that every run is also judged on; "
             "never trained or tuned on")
    add("--bootstrap", type=count(0, 100_000), default=d.bootstrap,
        help="bootstrap resamples of the test split per run")
    add("--report-only", action="store_true", help="rebuild the report from finished runs; train nothing")
    add("--docs", help="also copy report.md and its figures to this folder (e.g. docs/experiments/fundus4)")
    add("--resume", action="store_true", help="accepted for symmetry: a re-run always resumes")


def run(args) -> int:
    from training.experiments.pipeline import run_pipeline

    return run_pipeline(args)
