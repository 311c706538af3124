"""The pix2pix verbs' options, each declared once: `Pix2PixConfig` (every hyperparameter of one
pix2pix run, saved beside its outputs as config.json) and, per verb, what else the command line
says: `Pix2PixOptions` (`pix2pix`), `Pix2PixEvalOptions`, `Pix2PixGenerateOptions`.

Apart from `trainer` (which loads Keras when imported) so that `python -m training --help`
builds these options without loading Keras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from training.options import nested, option


@dataclass(frozen=True)
class Pix2PixConfig:
    """Every hyperparameter of one pix2pix run; saved beside its outputs."""

    # square images; a multiple of 2 ** levels
    size: int = option(256, help="image side; masks and photos are stretched to size x size")
    styles: tuple[str, ...] = ("drive",)  # colour styles, in one-hot order
    # generator channels after the first halving; doubled per halving
    width: int = option(32, help="generator channels after the first halving")
    levels: int = option(7, help="U-Net halvings (size must be a multiple of 2^levels)")  # 256 -> 2
    max_channels: int = option(256)
    dropout: float = 0.5  # in the three deepest decoder blocks while training (Isola et al.)
    d_width: int = option(32, help="discriminator channels of its first layer")
    d_layers: int = 3  # strided discriminator layers: 3 gives 70 x 70 patches
    learning_rate: float = option(2e-4, after="batch_size")
    beta_1: float = 0.5
    beta_2: float = 0.999
    # fraction of training after which the learning rate falls linearly to 0
    decay_from: float = option(0.5, help="fraction of training after which the learning rate falls linearly to 0")
    l1_weight: float = option(100.0)
    adversarial_weight: float = 1.0
    # weight of the L1 outside the field of view (inside: 1)
    outside_weight: float = option(0.1, help="L1 weight outside the field of view (inside: 1)")
    # targets brought to their style's mean colour (data.even_out_colour)
    even_colour: bool = option(True, flag="--keep-colour", negated=True,
                               help="train on the photographs' own colours instead of evening each one out to its "
                                    "style's mean colour (the mask says nothing about exposure)")
    batch_size: int = option(4, after="epochs")
    epochs: int = option(150, after="d_width")
    hflip: bool = True  # off with `--no-augment` (Pix2PixOptions)
    vflip: bool = option(False, after="zoom", help="also flip upside down (left-right flips are on)")
    rotate_degrees: float = option(10.0, flag="--rotate", after="even_colour", help="max rotation, degrees")
    zoom: float = option(0.08, help="max zoom, e.g. 0.08 for x/1.08 to x1.08")
    seed: int = option(0)
    grid_rows: int = 4  # training pairs shown in each epoch's sample grid

    def __post_init__(self) -> None:
        if self.levels < 1 or self.size % (2**self.levels) or self.size // (2**self.levels) < 1:
            raise ValueError(f"size {self.size} must be a multiple of 2 ** levels = {2 ** self.levels}")
        if self.size % (2**self.d_layers):
            raise ValueError(f"size {self.size} must be a multiple of 2 ** d_layers = {2 ** self.d_layers}")
        if not self.styles or len(set(self.styles)) != len(self.styles):
            raise ValueError(f"styles must be distinct names, at least one: {self.styles}")
        if not 0.0 <= self.decay_from <= 1.0:
            raise ValueError(f"decay_from must be in [0, 1], not {self.decay_from}")

    @property
    def channels_in(self) -> int:
        return 2 + len(self.styles)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Pix2PixConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["styles"] = tuple(values.get("styles", ()))
        values.setdefault("even_colour", False)  # configs from before the option trained on photographs as they are
        return cls(**values)


@dataclass(frozen=True)
class Pix2PixOptions:
    """`pix2pix`: the pairs folders and their styles, the output folder, and the run beside its config."""

    pairs: tuple[str, ...] = option((), required=True, nargs="+", metavar="DIR",
                                    help="pairs folders, each with image/, vessels/ (same file names) and optionally "
                                         "fov/")
    # The config's `styles` are these, or each folder's own name (`train.resolve_styles`).
    style_names: str | None = option(flag="--styles", help="comma-separated style names, one per --pairs folder "
                                     "(default: each folder's name, or its parent's for train/test/... folders)")
    out: str = option(required=True, help="output folder for the generator, samples and log")
    config: Pix2PixConfig = nested(Pix2PixConfig, invalid="pix2pix settings: ")
    augment: bool = option(True, negated=True, after="vflip", help="no flips, rotations or zooms")
    resume: bool = option(False, help="continue from the checkpoint")
    distribute: bool = option(False, help="data parallel over every local device (KERAS_BACKEND=jax): each "
                                          "--batch-size batch is split across them; checkpoints and --resume as on "
                                          "one device")
    stop_after: int | None = option(hidden=True)  # end the call early, as an interruption would (tests)

    def __post_init__(self) -> None:
        if not self.augment:  # `--no-augment`: the config trains without flips, rotations or zooms
            object.__setattr__(self, "config", dataclasses.replace(
                self.config, hflip=False, vflip=False, rotate_degrees=0.0, zoom=0.0))


@dataclass(frozen=True)
class Pix2PixEvalOptions:
    """`pix2pix-eval`: a generator judged on pairs it never trained on."""

    model: str = option(required=True, help="generator.keras (with generator.json beside it)")
    pairs: str = option(required=True, help="pairs folder the generator never trained on (image/, vessels/, fov/)")
    style: str | None = option(help="colour style to draw in (default: the folder's, e.g. drive/test -> drive)")
    out: str | None = option(help="folder for pix2pix_eval.json/.csv and the figure (default: beside the model)")
    json: bool = option(False, help='print only {"n", "mse", "ssim", "psnr", "mse_whole", "ssim_whole", '
                                    '"psnr_whole"}')
    store_metrics: bool = option(False, help="also write the means into the model's sidecar")


@dataclass(frozen=True)
class Pix2PixGenerateOptions:
    """`pix2pix-generate`: photographs drawn from vessel masks in one style."""

    model: str = option(required=True, help="generator.keras (with generator.json beside it)")
    mask: tuple[str, ...] = option((), required=True, nargs="+", metavar="PATH",
                                   help="vessel mask files (white vessels on black), folders of them, or pairs folders")
    fov: str | None = option(help="field-of-view mask for a single --mask (default: a centred disc)")
    style: str | None = option(help="colour style (one the generator learned; required if it knows several)")
    out: str = option(required=True, help="output folder, or a .png file for a single mask")
    grid: str | None = option(metavar="PNG",
                              help="also draw a figure: per mask (at most 6), the mask, the image in every style the "
                                   "generator knows, and the mask's own photograph when a pairs folder has one")
