"""Paired vessel-mask / photograph folders for pix2pix: discovery, pairing, loading, augmentation.

A pairs folder holds `image/` (fundus photographs), `vessels/` (white-on-black vessel masks)
and optionally `fov/` (field-of-view masks), one file per eye with the same name in each
(the extension may differ: `01.png` pairs with `01.gif`). Without `fov/` the field of view is
estimated from the photograph (`vessel_synthesis.estimate_fov`). A folder's colour style is its
name, or its parent's when it is named like a split (`drive/training`, `drive/test` -> "drive").

Inputs are built with the app's own `vessel_synthesis.generator_input`, so training, evaluation
and the app prepare masks identically. Augmentation (flips, small rotations and zooms, the same
transform for input and target) runs inside the training step with stateless random numbers
keyed by (seed, step), so a resumed run sees the same transforms as an uninterrupted one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.imaging.decode import IMAGE_EXTENSIONS, load_image
from retina_desktop.services.vessel_synthesis import (
    FIRST_STYLE_CHANNEL,
    estimate_fov,
    generator_input,
    load_mask,
    resize_image,
)

SPLIT_NAMES = {"train", "training", "test", "testing", "val", "valid", "validation", "images"}


@dataclass(frozen=True)
class Pair:
    name: str  # the shared file stem
    image: Path
    vessels: Path
    fov: Path | None  # None: estimated from the photograph


@dataclass(frozen=True)
class PairFolder:
    root: Path
    style: str
    pairs: tuple[Pair, ...]


def style_of(folder: str | os.PathLike) -> str:
    """A pairs folder's default style: its name, or its parent's if it is named like a split."""
    path = Path(folder).resolve()
    name = path.name.lower()
    return path.parent.name.lower() if name in SPLIT_NAMES and path.parent.name else name


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            raise UserError(f'"{folder}" holds both "{found[path.stem].name}" and "{path.name}"; which one pairs?')
        found[path.stem] = path
    return found


def _listing(names) -> str:
    names = sorted(names)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def find_pairs(folder: str | os.PathLike, style: str | None = None) -> PairFolder:
    """Pair `folder/image/X` with `folder/vessels/X` (and `folder/fov/X`) by file name."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f'Pairs folder not found: "{root}"')
    for sub in ("image", "vessels"):
        if not (root / sub).is_dir():
            raise UserError(f'"{root}" has no {sub}/ folder (expected image/ and vessels/ with the same file names)')
    images, vessels = _images_by_stem(root / "image"), _images_by_stem(root / "vessels")
    if only := images.keys() - vessels.keys():
        raise UserError(f'"{root / "image"}": no vessel mask in vessels/ for {_listing(only)}')
    if only := vessels.keys() - images.keys():
        raise UserError(f'"{root / "vessels"}": no photograph in image/ for {_listing(only)}')
    if not images:
        raise UserError(f'"{root}": image/ and vessels/ hold no images')
    fovs: dict[str, Path] = {}
    if (root / "fov").is_dir():
        fovs = _images_by_stem(root / "fov")
        if missing := images.keys() - fovs.keys():
            raise UserError(f'"{root / "fov"}": no field-of-view mask for {_listing(missing)}')
    pairs = tuple(Pair(stem, images[stem], vessels[stem], fovs.get(stem)) for stem in sorted(images))
    return PairFolder(root, style or style_of(root), pairs)


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photograph (H, W, 3) uint8, vessels (H, W) bool, fov (H, W) bool), all one size."""
    photo = np.asarray(load_image(pair.image).rgb, dtype=np.uint8)
    vessels = load_mask(pair.vessels, "vessel mask")
    fov = load_mask(pair.fov, "field-of-view mask") if pair.fov else estimate_fov(photo)
    for what, mask in (("vessel mask", vessels), ("field-of-view mask", fov)):
        if mask.shape != photo.shape[:2]:
            raise UserError(
                f'"{pair.vessels if what == "vessel mask" else pair.fov}": the {what} is '
                f"{mask.shape[1]} x {mask.shape[0]}, "
                f"its photograph \"{pair.image}\" {photo.shape[1]} x {photo.shape[0]}"
            )
    return photo, vessels, fov


def load_pairs(
    folders: list[PairFolder], size: int, styles: list[str], *, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(generator inputs (n, S, S, 2 + len(styles)) float32, targets (n, S, S, 3) uint8,
    FOVs at size S (n, S, S) bool) for every pair of `folders`, in folder then name order."""
    from tqdm import tqdm

    everything = [(folder, pair) for folder in folders for pair in folder.pairs]
    sources = np.zeros((len(everything), size, size, 2 + len(styles)), np.float32)
    targets = np.zeros((len(everything), size, size, 3), np.uint8)
    for i, (folder, pair) in enumerate(
        tqdm(everything, desc="reading pairs", unit="pair", disable=not progress, leave=False)
    ):
        photo, vessels, fov = read_pair(pair)
        sources[i] = generator_input(vessels, fov, folder.style, styles, size)[0]
        targets[i] = resize_image(photo, size)
    return sources, targets, sources[..., 1] > 0.5


def style_indices(sources: np.ndarray) -> np.ndarray:
    """(n,) int: each generator input's colour style, read from its one-hot style planes."""
    return np.argmax(sources[:, 0, 0, FIRST_STYLE_CHANNEL:], axis=-1)


def mean_colour(photo: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """(3,) float: the mean RGB of `photo` (H, W, 3) over the pixels where `fov` (H, W) is True."""
    return photo[fov].astype(np.float64).mean(axis=0)


def style_colours(targets: np.ndarray, fovs: np.ndarray, styles_of_samples: np.ndarray) -> np.ndarray:
    """(number of styles, 3) float: per style, the mean over its photographs of each one's mean
    RGB inside the field of view (every photograph counts once, whatever its aperture's size)."""
    styles_of_samples = np.asarray(styles_of_samples)
    means = np.stack([mean_colour(photo, fov) for photo, fov in zip(targets, fovs)])
    return np.stack([means[styles_of_samples == s].mean(axis=0) for s in range(int(styles_of_samples.max()) + 1)])


def even_out_colour(
    targets: np.ndarray, fovs: np.ndarray, styles_of_samples: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(targets with each photograph's mean colour in the field of view moved to its style's
    mean, that (styles, 3) table). The black surround is left as it is.

    Why: a vessel mask says nothing about exposure, yet one data set's photographs differ a lot
    in it (DRIVE's training photographs: mean red 180 +- 32 of 255). On 48 pairs the generator
    learns a brightness for each training mask, and so draws an unseen mask at an arbitrary
    brightness. Trained on evened photographs it draws the style's mean colour, the guess with
    the least expected squared error when the real photograph's exposure is unknown.
    """
    colours = style_colours(targets, fovs, styles_of_samples)
    evened = np.stack([with_mean_colour(photo, fov, colours[style])
                       for photo, fov, style in zip(targets, fovs, styles_of_samples)])
    return evened, colours


def with_mean_colour(photo: np.ndarray, fov: np.ndarray, colour) -> np.ndarray:
    """uint8 `photo` shifted so that its mean RGB inside `fov` is `colour` (clipped to 0..255);
    pixels outside the field of view are kept."""
    out = photo.copy()
    inside = photo[fov].astype(np.float32)
    shift = np.asarray(colour, np.float32) - mean_colour(photo, fov).astype(np.float32)
    out[fov] = np.round(np.clip(inside + shift, 0, 255)).astype(np.uint8)
    return out


def augment(sources, targets, seed, *, hflip: bool, vflip: bool, rotate_degrees: float, zoom: float, random=None):
    """One random flip / rotation / zoom per sample, applied to masks and photo alike.

    `sources` (n, S, S, C) float32 masks + style planes, `targets` (n, S, S, 3) in [-1, 1];
    `seed` a stateless seed of `random` (a `StatelessRandom`, this backend's by default). Masks
    are interpolated bilinearly and thresholded at 0.4, which keeps a rotated one-pixel vessel
    connected; style planes are left alone. Written in `keras.ops`: TensorFlow runs its
    projective-transform kernel, JAX its own interpolation.
    """
    from retina_desktop.core.quiet import import_keras
    from training.stateless_random import StatelessRandom

    ops = import_keras().ops
    random = random or StatelessRandom()
    n = ops.shape(sources)[0]
    size = float(sources.shape[1])
    seeds = random.split(seed, 4)
    ones = ops.ones([n])
    flip_x = ops.where(random.uniform([n], seeds[0]) < 0.5, -1.0, 1.0) if hflip else ones
    flip_y = ops.where(random.uniform([n], seeds[1]) < 0.5, -1.0, 1.0) if vflip else ones
    angle = random.uniform([n], seeds[2], -1.0, 1.0) * (rotate_degrees * np.pi / 180.0)
    # Zoom factor, log-uniform in [1 / (1 + zoom), 1 + zoom]: input coordinates = M (out - c) + c.
    scale = ops.exp(random.uniform([n], seeds[3], -1.0, 1.0) * float(np.log1p(zoom)))
    cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
    m00, m01, m10, m11 = cos * flip_x, -sin * flip_y, sin * flip_x, cos * flip_y
    c = (size - 1.0) / 2.0
    zeros = ops.zeros([n])
    transforms = ops.stack([m00, m01, c - m00 * c - m01 * c, m10, m11, c - m10 * c - m11 * c, zeros, zeros], axis=1)
    # Masks and the photo shifted to [0, 2] so that the constant fill 0 is black / no vessel.
    moving = ops.concatenate([sources[..., :2], targets + 1.0], axis=-1)
    moved = ops.image.affine_transform(moving, transforms, interpolation="bilinear", fill_mode="constant",
                                       fill_value=0.0)
    masks = ops.cast(moved[..., :2] >= 0.4, "float32")
    return ops.concatenate([masks, sources[..., 2:]], axis=-1), moved[..., 2:] - 1.0
