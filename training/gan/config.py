"""The GAN verbs' options, each declared once: `GanConfig` (every hyperparameter of one GAN run,
saved beside its outputs as config.json) and, per verb, what else the command line says:
`GanOptions` (`gan`), `SynthesizeOptions`, `GanEvalOptions`, `GanCombineOptions`.

Apart from `trainer` (which loads Keras when imported) so that `python -m training --help`
builds these options without loading Keras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from retina_desktop.core.model_card import FIT_MODES, InputSpec
from training.bounds import MAX_IMAGES, count
from training.classifier.config import MODALITIES
from training.options import nested, option

LOSSES = ("hinge", "nonsaturating")
POLICIES = ("color", "translation", "cutout")  # DiffAugment's transforms (`diffaugment`)


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation,cutout" -> ("color", "translation", "cutout"); "" means none."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")
    return names


@dataclass(frozen=True)
class GanConfig:
    """Every hyperparameter of one GAN run; saved beside its outputs."""

    size: int = option(128, help="image height and width (a power of two)")  # square images, a power of two >= 8
    latent_dim: int = option(128)
    # channels at full resolution; doubled at each halving up to max_channels
    width: int = option(16, help="channels at full resolution")
    # The discriminator's own width (0: the generator's). In every fundus run on version 2 the
    # discriminator sat near chance and the generator never drew vessels: a wider
    # discriminator than generator is the cheapest way to give it more to judge with.
    d_width: int = option(0, help="the discriminator's channels at full resolution (default: --width)")
    max_channels: int = 256
    g_learning_rate: float = option(2e-4, flag="--learning-rate")
    # None (the command line without `--d-learning-rate`): the generator's.
    d_learning_rate: float = option(None, help="the discriminator's own learning rate (default: --learning-rate); a "
                                               "faster discriminator than generator is the two time-scale rule (TTUR)")
    beta_1: float = 0.0  # Adam betas of BigGAN / StyleGAN2: no first-moment lag in the duel
    beta_2: float = 0.99
    batch_size: int = option(16, type=count(1, 65_536), after="epochs")
    epochs: int = option(100, type=count(1, 100_000), after="d_width")
    loss: str = option("hinge", choices=LOSSES)
    r1_gamma: float = option(0.0)  # 0 turns the R1 penalty off (spectral norm already bounds D)
    ema_decay: float = option(0.999)
    augment: str = option("color,translation,cutout", help="DiffAugment policy ('' for none)")
    augment_p: float = 1.0  # probability per image and transform, when not adaptive
    # > 0 adapts p (from 0) towards E[sign(D(real))] = target, ADA's 0.6. With p fixed at 1 our
    # small spectrally normalised discriminator could not keep up: its hinge loss drifted to
    # 1.9-2.0 (chance) within 5 epochs; adaptive, it holds at about 1.5 and the samples of the
    # same step show discs, optic discs and vessels instead of blotches.
    ada_target: float = option(0.6, help="adapt the augment probability towards this E[sign(D(real))] (ADA); 0: "
                                         "always augment")
    ada_images: float = 10_000  # images over which an adaptive p can move from 0 to 1
    xflip: bool = True  # mirror reals: a mirrored left eye is a plausible right eye
    # Every class equally often in each epoch (scarce classes drawn repeatedly). Drawn in the
    # data's own mix, a class with 50 of 1,679 images was 3% of the steps and the generator
    # ignored its label: the same latent made the same normal-looking fundus for any class.
    balance_classes: bool = option(True, flag="--data-mix", negated=True,
                                   help="draw classes in the data's own proportions, not equally often")
    # A per-class gain and bias after every batch norm of the generator (conditional batch norm,
    # as in SN-GAN's projection paper and BigGAN), on top of the label at the input. With the
    # label at the input only, the 128 px fundus GAN drew the same image for cataract, diabetic
    # retinopathy and glaucoma after 5,360 steps (only "normal" differed).
    conditional_norm: bool = True
    # The discriminator also sees how much the batch varies (ProGAN's minibatch standard
    # deviation), so a generator that draws one image for every latent is easy to tell from
    # real data. Without it, the OCT GAN collapsed to one B-scan per class within 50 epochs
    # while its discriminator won (ADA's p climbing past 0.8). It was not enough alone: with the
    # hinge loss the OCT GAN still collapsed; the non-saturating loss with R1 trained.
    minibatch_std: bool = True
    # Spectral norm on every discriminator layer (SN-GAN). It keeps the duel stable but, with
    # one discriminator step per generator step, our narrow discriminator stayed near chance
    # (hinge loss 1.8-2.0 for whole fine-tuning runs); False drops it for StyleGAN2-ADA's
    # recipe, an unconstrained discriminator held in check by the R1 penalty (`r1_gamma`).
    d_spectral_norm: bool = option(True, flag="--d-norm", choices={"spectral": True, "none": False},
                                   after="r1_gamma",
                                   help="the discriminator's layers spectrally normalised (SN-GAN), or not "
                                        "(StyleGAN2-ADA: then give --r1-gamma)")
    # A trained generator (.keras) whose weights the generator starts from, instead of random
    # ones (`warm_start`); "" for none. The discriminator always starts from random weights.
    init_generator: str = option("", help="start the generator from this trained generator (.keras, same classes, "
                                          "size and --width) instead of random weights: fine-tuning it on --data")
    seed: int = option(0)
    labels: tuple[str, ...] = ()  # the classes trained on, in label-index order
    grid_columns: int = 8  # samples per class in each epoch's grid

    def __post_init__(self) -> None:
        if not self.d_learning_rate:  # `--d-learning-rate` not given: the generator's pace
            object.__setattr__(self, "d_learning_rate", self.g_learning_rate)
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two >= 8, not {self.size}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not self.d_spectral_norm and self.r1_gamma <= 0:
            raise ValueError("a discriminator without spectral norm needs an R1 penalty (--r1-gamma > 0)")
        parse_policy(self.augment)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GanConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["labels"] = tuple(values.get("labels", ()))
        values.setdefault("balance_classes", False)  # configs from before the option: the data's mix
        values.setdefault("conditional_norm", False)  # ... and the label at the input only
        values.setdefault("minibatch_std", False)
        return cls(**values)


@dataclass(frozen=True)
class GanOptions:
    """`gan`: the data and classes to learn, how images are fitted, and the run beside its config."""

    data: str = option(required=True, help="folder of class sub-folders (+ splits.csv)")
    out: str = option(required=True, help="output folder for the generator, samples and log")
    # The config's `labels` are these, checked against the data set and in its order.
    wanted_labels: str | None = option(flag="--labels", help="comma-separated classes to learn (default: all)")
    modality: str = option("fundus", choices=MODALITIES)
    config: GanConfig = nested(GanConfig, invalid="gan: ")
    # Not a GanConfig field (config.json kept its keys), yet a resume must keep it: fit.json.
    fit: str = option("crop", choices=FIT_MODES, after="size",
                      help="how images become squares: fov (fundus photographs: the circle of the eye "
                           "centred, black outside, as the classifier sees them), crop, or stretch (OCT "
                           "B-scans, shown at their own proportions again in the app)")
    keep_generators: bool = option(False, help="also write each epoch's generator to generators/epoch_NNNN.keras, "
                                               "to choose one with gan-eval --split val")
    resume: bool = option(False, help="continue from the checkpoint")
    distribute: bool = option(False, help="data parallel over every local device (KERAS_BACKEND=jax): each "
                                          "--batch-size batch is split across them; checkpoints and --resume as on "
                                          "one device")
    stop_after: int | None = option(hidden=True)  # end the call early, as an interruption would (tests)

    def input_spec(self) -> InputSpec:
        """How the training images are fitted: squares of the config's size, pixels unscaled."""
        return InputSpec(self.config.size, self.config.size, self.fit, "none")


@dataclass(frozen=True)
class SynthesizeOptions:
    """`synthesize`: N images of one class from a generator."""

    generator: str = option(required=True, help="generator.keras (with generator.json beside it)")
    label: str = option(required=True)
    n: int = option(0, required=True, type=count(1, MAX_IMAGES), help=f"images to write (at most {MAX_IMAGES:,})")
    out: str = option(required=True)
    seed: int = option(0)


@dataclass(frozen=True)
class GanEvalOptions:
    """`gan-eval`: one or more generators judged against a data set's real images."""

    generator: tuple[str, ...] = option((), required=True, nargs="+",
                                        help="one generator, or several (say, a run's generators/epoch_*.keras) to "
                                        "compare on one set of real features; the first is the baseline of the table")
    data: str = option(required=True, help="the data set it was trained on (train and test splits)")
    labels: str | None = option(help="comma-separated classes to judge (default: all the generator's)")
    classifier: str | None = option(help="feature extractor (default: the app's models/keras_model.h5)")
    split: str = option("test", choices=("val", "test"))
    fit: str | None = option(choices=FIT_MODES, help="how real images are fitted to the generator's square "
                                                     "(default: its sidecar's, else crop)")
    n: int = option(200, type=count(1, MAX_IMAGES), help="synthetic images per class")
    k: int = option(3, type=count(1, 1000), help="neighbours for precision/recall")
    seed: int = option(0)
    out: str | None = option(help="folder for gan_eval.json and the closest pairs (default: beside the generator; "
                                  "with several, a sub-folder each)")
    json: bool = option(False, help="print the metrics object only")


@dataclass(frozen=True)
class GanCombineOptions:
    """`gan-combine`: a base generator and the generators chosen for some of its classes."""

    generator: str = option(required=True,
                            help="the base generator.keras: its classes, and every class not given with --class")
    class_generators: tuple[str, ...] = option(flag="--class", repeat=True, required=True,
                                               metavar="CLASS=GENERATOR",
                                               help="draw CLASS with GENERATOR.keras (which must know CLASS); repeat "
                                                    "for more classes")
    out: str = option(required=True, help="the combined generator.keras (its sidecar is written beside it)")
