"""Every hyperparameter of one pix2pix run (`Pix2PixConfig`), saved beside its outputs.

Apart from `pix2pix` (which loads Keras when imported) so that the `pix2pix` verb can build
its options from these defaults without loading Keras.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Pix2PixConfig:
    """Every hyperparameter of one pix2pix run; saved beside its outputs."""

    size: int = 256  # square images; a multiple of 2 ** levels
    styles: tuple[str, ...] = ("drive",)  # colour styles, in one-hot order
    width: int = 32  # generator channels after the first halving; doubled per halving
    levels: int = 7  # halvings in the U-Net: 256 -> 2
    max_channels: int = 256
    dropout: float = 0.5  # in the three deepest decoder blocks while training (Isola et al.)
    d_width: int = 32
    d_layers: int = 3  # strided discriminator layers: 3 gives 70 x 70 patches
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    decay_from: float = 0.5  # fraction of training after which the learning rate falls linearly to 0
    l1_weight: float = 100.0
    adversarial_weight: float = 1.0
    outside_weight: float = 0.1  # weight of the L1 outside the field of view (inside: 1)
    even_colour: bool = True  # targets brought to their style's mean colour (data.even_out_colour)
    batch_size: int = 4
    epochs: int = 150
    hflip: bool = True
    vflip: bool = False
    rotate_degrees: float = 10.0
    zoom: float = 0.08
    seed: int = 0
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
