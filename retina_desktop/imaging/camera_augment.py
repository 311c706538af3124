"""Camera augmentation: vary what differs between fundus cameras, not what differs between eyes.

A model trained on photographs from a few cameras can learn each camera's colour balance,
sharpness, JPEG quality, resolution, vignetting and frame shape instead of the retina (fundus4
version 1's model did exactly that). Training draws every one of these afresh for each image in
each epoch, so none of them tells the class. The draws come from a numpy Generator that the
trainer seeds with (seed, epoch): a resumed run replays the same images. Works on uint8 RGB
arrays that are already field-of-view standardised (black outside a centred disc).

It lives in the service layer beside `augmentation.py` so the app could preview it; it needs
only numpy, Pillow and scipy.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class CameraAugmentConfig:
    """Ranges of each camera difference; 0 turns one off. Each is applied with probability `p`."""

    p: float = 0.5
    colour_balance: float = 0.15  # each channel's gain drawn from [1 - c, 1 + c]
    blur_sigma: float = 1.2  # Gaussian blur up to this many pixels (at the model's input size)
    jpeg_quality: tuple[int, int] = (25, 95)  # re-encoded at a quality drawn from this range
    resolution: float = 0.5  # down to this fraction of the side and back up
    vignetting: float = 0.4  # the rim darkened by up to this fraction
    frame_cut: float = 0.2  # top and bottom cut off by up to this fraction of the side each

    def replace(self, **changes) -> CameraAugmentConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def camera_augment(image: np.ndarray, config: CameraAugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One uint8 RGB image (h, w, 3) as another camera might have taken it."""
    height, width = image.shape[:2]
    # Every draw is made whether or not it is used, so each image consumes the same number of
    # draws and one change of `p` does not reshuffle every later image.
    use = rng.random(6) < config.p
    gains = rng.uniform(1 - config.colour_balance, 1 + config.colour_balance, 3)
    sigma = rng.uniform(0.3, max(0.3, config.blur_sigma))
    quality = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    factor = rng.uniform(config.resolution, 1.0)
    strength = rng.uniform(0.0, config.vignetting)
    cuts = rng.uniform(0.0, config.frame_cut, 2)

    x: np.ndarray = np.asarray(image, np.float32)
    if use[0] and config.colour_balance > 0:
        x = x * gains
    if use[4] and config.vignetting > 0:
        ys, xs = np.ogrid[:height, :width]
        radius = np.hypot((xs - (width - 1) / 2) / (width / 2), (ys - (height - 1) / 2) / (height / 2))
        x = x * (1 - strength * np.clip(radius, 0, 1) ** 2)[..., None]
    picture = Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))
    if use[3] and config.resolution < 1:
        small = (max(8, round(width * factor)), max(8, round(height * factor)))
        picture = picture.resize(small, Image.Resampling.BILINEAR).resize((width, height), Image.Resampling.BILINEAR)
    if use[1] and config.blur_sigma > 0:
        picture = picture.filter(ImageFilter.GaussianBlur(sigma))
    if use[2] and config.jpeg_quality[0] < 100:
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        picture = Image.open(buffer).convert("RGB")
    out = np.asarray(picture, np.uint8).copy()
    if use[5] and config.frame_cut > 0:
        # A sensor narrower than the disc (EyePACS's cameras) cuts its top and bottom.
        top, bottom = (int(round(c * height)) for c in cuts)
        out[:top] = 0
        out[height - bottom:] = 0
    return out


def camera_augment_batch(images: np.ndarray, config: CameraAugmentConfig, rng: np.random.Generator,
                         workers: int = 2) -> np.ndarray:
    """Each image of a uint8 batch (n, h, w, 3) augmented with its own draws, in order.

    One child generator per image (spawned in order) keeps the result independent of how the
    work is split over threads; Pillow releases the GIL, so two threads use both cores.
    """
    from concurrent.futures import ThreadPoolExecutor

    children = rng.spawn(len(images))
    out = np.empty_like(images)

    def one(i: int) -> None:
        out[i] = camera_augment(images[i], config, children[i])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, range(len(images))))
    return out
