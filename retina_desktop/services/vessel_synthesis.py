"""Vessel mask -> fundus photograph: the generator's input contract, shared by training and app.

A vessel-to-fundus generator (pix2pix, trained by `python -m training pix2pix`) takes
(n, S, S, 2 + len(styles)) float32 and returns (n, S, S, 3) in [-1, 1] (tanh):

- channel 0: the vessel mask, 1 on a vessel, 0 elsewhere;
- channel 1: the field of view (FOV), 1 inside the camera's circular aperture, 0 outside;
- channels 2...: one constant plane per colour style (a one-hot over the sidecar's `styles`,
  e.g. ["drive", "chase"]: the data set a training pair came from). The same mask drawn with
  another style's plane gives the same vessels in that data set's colours.

Every mask and photograph is stretched to S x S (no crop, no padding): fundus data sets are
near square (DRIVE 565 x 584, CHASE_DB1 999 x 960), so the distortion is a few per cent. Masks
are resized as coverage fractions (box filter) and thresholded low enough that a one-pixel
vessel survives a 4x reduction (see `resize_mask`); the field of view at one half.

Numpy, Pillow and scipy.ndimage only: the app runs the generator through Keras or LiteRT and
prepares its input here, so training and the app cannot prepare it differently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from retina_desktop.core.errors import ImageError, ModelError
from retina_desktop.imaging.decode import load_image
from retina_desktop.inference import sidecars
from retina_desktop.inference.generator_runtime import to_uint8  # noqa: F401  (re-exported: generator output -> uint8 RGB)

KIND = sidecars.VESSEL_TO_FUNDUS
VESSEL_CHANNEL, FOV_CHANNEL, FIRST_STYLE_CHANNEL = 0, 1, 2
# Radius of the default field of view, as a fraction of the side: the DRIVE and CHASE_DB1
# apertures, stretched to a square, cover 68-69 % of it, i.e. a disc of radius ~0.468.
DEFAULT_FOV_RADIUS = 0.468
# A mask's pixels should be near black or near white; more than this fraction in between
# means the file is a photograph or a probability map, not a two-level mask.
MAX_GREY_FRACTION = 0.2
IMAGE_RESAMPLE = Image.Resampling.LANCZOS


def input_layout(styles: list[str] | tuple[str, ...]) -> list[str]:
    """What each input channel holds, in order (written into the generator's sidecar)."""
    return ["vessel mask (1 = vessel, 0 = background)", "field of view (1 = inside, 0 = outside)"] + [
        f"style {name!r} (constant 1 when chosen, else 0)" for name in styles
    ]


def load_mask(path: str | os.PathLike, role: str = "vessel mask") -> np.ndarray:
    """A two-level mask file -> (H, W) bool, True where white.

    Any mode Pillow or `load_image` reads (1-bit, 8/16-bit grey, RGB, palette, alpha composited
    on black); the grey level (mean of R, G, B) is thresholded at half range. `role` is
    "vessel mask" (white vessels on black, less than half white) or "field-of-view mask".
    """
    grey = np.asarray(load_image(path).rgb, dtype=np.float32).mean(axis=2)
    mask = grey >= 127.5
    in_between = float(np.mean((grey > 48) & (grey < 207)))
    if in_between > MAX_GREY_FRACTION:
        raise ImageError(
            f'"{path}" is not a two-level {role}: {in_between:.0%} of its pixels are grey '
            "(expected white on black, like DRIVE's vessels/ and fov/ files)"
        )
    white = float(mask.mean())
    if role == "vessel mask":
        if white == 0:
            raise ImageError(f'"{path}" has no white pixels: a vessel mask draws vessels in white on black')
        if white > 0.5:
            raise ImageError(
                f'"{path}" is {white:.0%} white: a vessel mask draws vessels in white on black '
                "(is it inverted?)"
            )
    elif white < 0.05:
        raise ImageError(f'"{path}" is {white:.0%} white: a {role} is white inside the field of view')
    return mask


def resize_mask(mask: np.ndarray, size: int, *, keep_thin: bool = True) -> np.ndarray:
    """(H, W) bool -> (size, size) bool, stretched.

    Each output pixel gets the fraction of it the mask covers (box filter). With `keep_thin`
    (vessels) the threshold is 0.45 / r for a reduction by r (at most 0.5): a one-pixel line
    covers at least about 1 / (2 r) of the output pixels it crosses, so it stays connected,
    at the price of thickening wide vessels by under a pixel. Otherwise (the field of view)
    the threshold is one half.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), not of shape {mask.shape}")
    coverage = np.asarray(
        Image.fromarray(mask.astype(np.float32), "F").resize((size, size), Image.Resampling.BOX),
        dtype=np.float32,
    )
    reduction = max(mask.shape[0] / size, mask.shape[1] / size, 1.0)
    threshold = min(0.5, 0.45 / reduction) if keep_thin else 0.5
    return coverage >= threshold - 1e-6


def resize_image(image: Image.Image | np.ndarray, size: int) -> np.ndarray:
    """An RGB photograph -> (size, size, 3) uint8, stretched (Lanczos, as `preprocessing`)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    return np.asarray(image.convert("RGB").resize((size, size), IMAGE_RESAMPLE), dtype=np.uint8)


def estimate_fov(image_rgb: Image.Image | np.ndarray) -> np.ndarray:
    """The field of view of a fundus photograph with a dark surround -> (H, W) bool.

    For data sets without FOV masks (CHASE_DB1): the brightest channel, smoothed, thresholded
    at 10 % of the way from the background (1st percentile) to the bright end (99th); then the
    largest connected region, filled out to its convex hull (the aperture is a disc, possibly
    clipped by the frame: convex), so a dark rim or dark vessels do not bite into it.
    """
    from PIL import ImageDraw
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

    pixels = np.asarray(image_rgb, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"estimate_fov needs an (H, W, 3) RGB image, not shape {pixels.shape}")
    bright = pixels.max(axis=2)
    smooth = ndimage.gaussian_filter(bright, sigma=0.5 + 0.002 * min(bright.shape))
    low, high = np.percentile(smooth, [1, 99])
    labels, count = ndimage.label(smooth > low + 0.1 * (high - low))
    if count == 0:
        return np.zeros(bright.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    region = labels == int(np.argmax(sizes))
    edge = region & ~ndimage.binary_erosion(region)
    ys, xs = np.nonzero(edge)
    try:
        hull = ConvexHull(np.column_stack([xs, ys]))
    except (QhullError, ValueError):  # a line or a few pixels: nothing convex to fill
        return ndimage.binary_fill_holes(region)
    canvas = Image.new("1", (bright.shape[1], bright.shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([(float(xs[i]), float(ys[i])) for i in hull.vertices], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def default_fov(size: int) -> np.ndarray:
    """A centred disc, for a drawn mask that comes without a field of view: (size, size) bool."""
    centre = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (DEFAULT_FOV_RADIUS * size) ** 2


def generator_input(
    vessels: np.ndarray,
    fov: np.ndarray | None,
    style: str,
    styles: list[str] | tuple[str, ...],
    size: int,
) -> np.ndarray:
    """One generator input, (1, size, size, 2 + len(styles)) float32.

    `vessels` and `fov` are (H, W) bool masks of the same shape, any size (stretched to
    size x size); `fov` None means `default_fov`. `style` picks the one-hot colour plane.
    """
    vessels = np.asarray(vessels)
    if vessels.ndim != 2:
        raise ValueError(f"the vessel mask must be 2-D (height, width), not of shape {vessels.shape}")
    if fov is None:
        fov_small = default_fov(size)
    else:
        fov = np.asarray(fov)
        if fov.shape != vessels.shape:
            raise ValueError(
                f"the field-of-view mask is {fov.shape[1]} x {fov.shape[0]} but the vessel mask is "
                f"{vessels.shape[1]} x {vessels.shape[0]}; they must match"
            )
        fov_small = resize_mask(fov, size, keep_thin=False)
    styles = list(styles)
    if style not in styles:
        raise ModelError(f"style {style!r} is not one the generator learned ({', '.join(styles)})")
    planes = np.zeros((1, size, size, FIRST_STYLE_CHANNEL + len(styles)), dtype=np.float32)
    planes[0, ..., VESSEL_CHANNEL] = resize_mask(vessels.astype(bool), size)
    planes[0, ..., FOV_CHANNEL] = fov_small
    planes[0, ..., FIRST_STYLE_CHANNEL + styles.index(style)] = 1.0
    return planes


def check_input(batch: np.ndarray, size: int, styles: list[str] | tuple[str, ...]) -> None:
    """Raise ValueError unless `batch` is (n, size, size, 2 + len(styles))."""
    expected = (size, size, FIRST_STYLE_CHANNEL + len(styles))
    shape = tuple(np.shape(batch))
    if len(shape) != 4 or shape[1:] != expected:
        raise ValueError(f"generator input must have shape (n, {', '.join(map(str, expected))}), not {shape}")


@dataclass(frozen=True)
class SynthesisSpec:
    """What the app needs from a vessel-to-fundus generator's sidecar."""

    size: int
    styles: tuple[str, ...]

    @classmethod
    def read(cls, model_path: str | os.PathLike) -> SynthesisSpec:
        """From `<model>.json` beside the model; ModelError naming the file if it is not one."""
        sidecar = sidecars.sidecar_path_for(model_path)
        try:
            card = sidecars.parse(sidecars.read_json(sidecar), sidecars.VesselToFundusSidecar)
        except FileNotFoundError as err:
            raise ModelError(f'"{model_path}" has no sidecar "{sidecar}" giving its size and styles') from err
        except sidecars.WrongKind as err:
            raise ModelError(f'"{sidecar}" does not describe a {KIND} generator ({err})') from err
        except (OSError, ValueError) as err:
            raise ModelError(f'Cannot read the sidecar "{sidecar}": {err}') from err
        assert isinstance(card, sidecars.VesselToFundusSidecar)
        return cls(size=card.size, styles=tuple(card.styles))


def random_vessel_tree(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A made-up vessel mask and its field of view, (size, size) bool each, for demonstrations.

    Not anatomy, a sketch of it: four arcades leave a disc placed left or right of centre (as in
    a left or right eye), curve towards the periphery and branch, thinning at each branch. Made
    by this function, not copied from any data set, so the app can offer samples of its own.
    """
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    fov = default_fov(size)
    side = 1 if rng.random() < 0.5 else -1
    disc = np.array([size / 2 + side * size * rng.uniform(0.12, 0.2), size / 2 + size * rng.uniform(-0.05, 0.05)])

    budget = [70]  # branches in all: recursion alone would make some trees a thicket

    def grow(point: np.ndarray, angle: float, width: float, length: float, bend: float, depth: int) -> None:
        step = 4.0
        for _ in range(int(length / step)):
            angle += bend + rng.normal(0, 0.05)
            nxt = point + step * np.array([np.cos(angle), np.sin(angle)])
            if not (0 <= nxt[0] < size and 0 <= nxt[1] < size) or not fov[int(nxt[1]), int(nxt[0])]:
                return
            draw.line([tuple(point), tuple(nxt)], fill=255, width=max(1, int(round(width))))
            point = nxt
            if depth < 5 and budget[0] > 0 and rng.random() < 0.08:
                budget[0] -= 1
                grow(point.copy(), angle + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), width * 0.72,
                     length * 0.6, rng.normal(0, 0.02), depth + 1)
                width *= 0.9

    scale = size / 512
    toward_fovea = np.pi if side > 0 else 0.0  # the arcades arch round the macula, away from the disc
    for vertical in (-1, 1):
        for offset in (0.0, 0.25):  # an artery and a vein per arcade
            temporal = toward_fovea + vertical * (0.75 + offset)  # then bending back towards level
            grow(disc.copy(), temporal, 5.5 * scale, 560 * scale, -vertical * 0.012, 0)
            nasal = toward_fovea + np.pi - vertical * (0.6 + offset)
            grow(disc.copy(), nasal, 4 * scale, 300 * scale, vertical * 0.008, 1)
    return (np.asarray(canvas) > 127) & fov, fov  # thick lines near the rim spill over it
