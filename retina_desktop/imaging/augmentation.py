"""Traditional augmentation for fundus and OCT images, as Keras preprocessing layers.

Training applies these layers to every batch; the app's Augment tab previews them with the same
settings, so what a user sees is what the classifier was trained on. It lives in the service
layer because the app must never import training/.

Anatomy decides the defaults: a horizontally flipped fundus is a plausible fellow eye, and an
OCT B-scan read left-to-right is as valid as right-to-left, but a vertically flipped B-scan puts
the vitreous under the choroid, so OCT gets no vertical flip and smaller rotations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from retina_desktop.core.quiet import import_keras


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation; 0 (or False) turns one off."""

    flip_horizontal: bool = True
    flip_vertical: bool = False
    rotation_degrees: float = 15.0
    zoom: float = 0.10  # fraction in and out
    brightness: float = 0.15  # fraction of the 0..255 range
    contrast: float = 0.15
    gamma: float = 0.20  # gamma drawn log-uniformly from [1/(1+g), 1+g]

    def replace(self, **changes) -> AugmentConfig:
        return dataclasses.replace(self, **changes)


def default_config(modality: str) -> AugmentConfig:
    """The settings training uses for a modality ("fundus", "oct" or "unknown")."""
    if modality == "oct":
        return AugmentConfig(rotation_degrees=5.0, zoom=0.05, flip_vertical=False)
    return AugmentConfig()


def build_augmenter(config: AugmentConfig, seed: int | None = None):
    """A `keras.Sequential` that augments batches of 0..255 float images in training mode."""
    keras = import_keras()
    layers: list[Any] = []

    def next_seed():
        return None if seed is None else seed + len(layers)

    if config.flip_horizontal or config.flip_vertical:
        mode = "horizontal_and_vertical" if config.flip_vertical else "horizontal"
        if not config.flip_horizontal:
            mode = "vertical"
        layers.append(keras.layers.RandomFlip(mode, seed=next_seed()))
    if config.rotation_degrees > 0:
        layers.append(
            keras.layers.RandomRotation(
                config.rotation_degrees / 360.0, fill_mode="constant", seed=next_seed()
            )
        )
    if config.zoom > 0:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="constant", seed=next_seed()))
    if config.brightness > 0:
        layers.append(keras.layers.RandomBrightness(config.brightness, seed=next_seed()))
    if config.contrast > 0:
        layers.append(keras.layers.RandomContrast(config.contrast, seed=next_seed()))
    if config.gamma > 0:
        layers.append(random_gamma_layer()(config.gamma, seed=next_seed()))
    # Keras cannot call an empty Sequential; everything switched off means "unchanged".
    return keras.Sequential(layers or [keras.layers.Identity()], name="augment")


_random_gamma_cls = None


def random_gamma_layer():
    """The RandomGamma layer class (built lazily so that importing this module stays cheap)."""
    global _random_gamma_cls
    if _random_gamma_cls is not None:
        return _random_gamma_cls
    keras = import_keras()

    @keras.saving.register_keras_serializable(package="retina_desktop")
    class RandomGamma(keras.layers.Layer):
        """Gamma correction with a random exponent per image (Keras has no such layer)."""

        def __init__(self, factor: float, seed: int | None = None, **kwargs):
            super().__init__(**kwargs)
            self.factor = float(factor)
            self.seed = seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=True):
            if not training:
                return images
            ops = keras.ops
            batch = ops.shape(images)[0]
            log_limit = float(np.log1p(self.factor))
            log_gamma = keras.random.uniform(
                (batch, 1, 1, 1), -log_limit, log_limit, seed=self.seed_generator
            )
            unit = ops.clip(images / 255.0, 0.0, 1.0)
            return ops.power(unit, ops.exp(log_gamma)) * 255.0

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "factor": self.factor, "seed": self.seed}

    _random_gamma_cls = RandomGamma
    return RandomGamma


def preview(images: np.ndarray, config: AugmentConfig, seed: int = 0) -> np.ndarray:
    """Augment uint8 images (n, h, w, 3) as training would; returns uint8 of the same shape."""
    augmenter = build_augmenter(config, seed=seed)
    out = augmenter(images.astype("float32"), training=True)
    return np.clip(np.asarray(out), 0, 255).round().astype(np.uint8)


# ---- the same transforms with fixed parameters, in numpy/PIL ----------------------------------
# The Augment tab shows one transform with the values on its sliders, and a grid of random ones
# "as training would make them"; the packaged app has no Keras, so both are done here with the
# Keras layers' definitions (tests/test_augmentation.py checks them against the layers).


@dataclass(frozen=True)
class Transform:
    """One draw of the augmentations above, in the order the Keras pipeline applies them."""

    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotation_degrees: float = 0.0  # counter-clockwise, as RandomRotation
    zoom: float = 0.0  # as RandomZoom: > 0 zooms out (content shrinks), < 0 zooms in
    brightness: float = 0.0  # added, as a fraction of the 0..255 range
    contrast: float = 1.0  # (x - mean) * contrast + mean, per image and channel
    gamma: float = 1.0  # (x / 255) ** gamma

    def describe(self) -> str:
        parts = []
        if self.flip_horizontal:
            parts.append("flip ↔")
        if self.flip_vertical:
            parts.append("flip ↕")
        if self.rotation_degrees:
            parts.append(f"rot {self.rotation_degrees:+.0f}°")
        if self.zoom:
            parts.append(f"zoom {'out' if self.zoom > 0 else 'in'} {abs(self.zoom):.0%}")
        if self.brightness:
            parts.append(f"bright {self.brightness:+.2f}")
        if self.contrast != 1.0:
            parts.append(f"contr ×{self.contrast:.2f}")
        if self.gamma != 1.0:
            parts.append(f"γ {self.gamma:.2f}")
        return ", ".join(parts) or "unchanged"


def apply_transform(image: np.ndarray, transform: Transform) -> np.ndarray:
    """uint8 RGB (h, w, 3) -> uint8 RGB, transformed as the Keras layers would with these values."""
    from PIL import Image

    picture = Image.fromarray(np.asarray(image, np.uint8))
    if transform.flip_horizontal:
        picture = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if transform.flip_vertical:
        picture = picture.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    if transform.rotation_degrees:
        picture = picture.rotate(transform.rotation_degrees, resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    if transform.zoom:
        # Output pixel (x, y) samples the input at centre + (1 + zoom) * ((x, y) - centre).
        scale = 1.0 + transform.zoom
        width, height = picture.size
        cx, cy = (width - 1) / 2, (height - 1) / 2
        picture = picture.transform(
            picture.size, Image.Transform.AFFINE, (scale, 0, cx * (1 - scale), 0, scale, cy * (1 - scale)),
            resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0),
        )
    x = np.asarray(picture, np.float32)
    if transform.brightness:
        x = np.clip(x + transform.brightness * 255.0, 0.0, 255.0)
    if transform.contrast != 1.0:
        mean = x.mean(axis=(0, 1), keepdims=True)
        x = np.clip((x - mean) * transform.contrast + mean, 0.0, 255.0)
    if transform.gamma != 1.0:
        x = np.power(np.clip(x / 255.0, 0.0, 1.0), transform.gamma) * 255.0
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def random_transform(config: AugmentConfig, rng: np.random.Generator) -> Transform:
    """One random draw from the ranges of `config`, as each training layer draws its value."""
    log_gamma = float(np.log1p(config.gamma))
    return Transform(
        flip_horizontal=bool(config.flip_horizontal and rng.random() < 0.5),
        flip_vertical=bool(config.flip_vertical and rng.random() < 0.5),
        rotation_degrees=float(rng.uniform(-config.rotation_degrees, config.rotation_degrees)),
        zoom=float(rng.uniform(-config.zoom, config.zoom)),
        brightness=float(rng.uniform(-config.brightness, config.brightness)),
        contrast=float(rng.uniform(1.0 - config.contrast, 1.0 + config.contrast)),
        gamma=float(np.exp(rng.uniform(-log_gamma, log_gamma))),
    )


def random_previews(
    image: np.ndarray, config: AugmentConfig, count: int, seed: int = 0
) -> list[tuple[np.ndarray, Transform]]:
    """`count` random augmentations of one uint8 image, with the draw that made each."""
    rng = np.random.default_rng(seed)
    draws = [random_transform(config, rng) for _ in range(count)]
    return [(apply_transform(image, t), t) for t in draws]
