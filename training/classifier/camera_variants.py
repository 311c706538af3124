"""Real photographs as other cameras would frame and expose them, for judging the image checks.

The checks learned the cameras of our data sets; a clinic's camera frames and exposes its
photographs its own way. Each variant here turns a real test photograph into what another camera
plausibly gives, so that a check that refuses it is caught before a clinic is:

- `clipped-3:2`: the 45-degree field clipped at top and bottom by a 3:2 sensor (a European
  high-resolution camera's 3504 x 2336 frames), 1,500 x 1,000;
- `wide-frame`: the field small in a large black frame (a camera that keeps its whole sensor);
- `bright`, `dark`: over- and under-exposed by a stop, within what graders keep;
- `orange`: a warm colour balance (brighter red, less blue), as some cameras render the fundus;
- `large`: 4,000 px wide, `small`: 512 px wide (sizes from 512 to 4,000 px).

Every variant starts from the photograph's own field of view, so it stays a real fundus
photograph: refusing one is a false refusal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from retina_desktop.imaging.fov import find_field_of_view


def _field(image: Image.Image) -> Image.Image:
    """The photograph cropped to the square around its field of view (itself when none is found)."""
    rgb = np.asarray(image.convert("RGB"))
    circle = find_field_of_view(rgb)
    if circle is None:
        return image.convert("RGB")
    r = max(circle.r, circle.radius_y)
    box = (int(circle.cx - r), int(circle.cy - r), int(circle.cx + r), int(circle.cy + r))
    return image.convert("RGB").crop(box)  # Pillow pads outside the picture with black


def clipped_3_2(image: Image.Image) -> Image.Image:
    """The field 1,280 px across in a 1,500 x 1,000 frame: the sensor itself cuts 140 px (11%)
    off its top and bottom, so the cut lies on the picture's edges, as a 3:2 camera's does."""
    square = _field(image).resize((1280, 1280), Image.Resampling.BICUBIC)
    frame = Image.new("RGB", (1500, 1000))
    frame.paste(square.crop((0, 140, 1280, 1140)), (110, 0))
    return frame


def wide_frame(image: Image.Image) -> Image.Image:
    square = _field(image).resize((700, 700), Image.Resampling.BICUBIC)
    frame = Image.new("RGB", (1400, 1100))
    frame.paste(square, (350, 200))
    return frame


def _scaled(image: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) * np.asarray(gains, np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _width(image: Image.Image, width: int) -> Image.Image:
    height = max(1, round(image.height * width / image.width))
    return image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "clipped-3:2": clipped_3_2,
    "wide-frame": wide_frame,
    "bright": lambda image: _scaled(image, (1.6, 1.6, 1.6)),
    "dark": lambda image: _scaled(image, (0.6, 0.6, 0.6)),
    "orange": lambda image: _scaled(image, (1.25, 1.0, 0.6)),
    "large": lambda image: _width(image, 4000),
    "small": lambda image: _width(image, 512),
}
