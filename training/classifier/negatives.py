"""Images that are not retinal photographs nor OCT scans, for teaching the model to say "not mine".

Nothing can be downloaded, so negatives come from what installed packages ship (scikit-image's
and matplotlib's sample photographs and documents, scikit-learn's sample photos, pydicom's CT,
MR, ultrasound and nuclear-medicine test images) and from generators here (rendered documents,
application screenshots, chest-radiograph-like images, noise, gradients, flat colours). Each
source file belongs to exactly one side ("train", "val" or "test") so that the reported flag
rate is measured on images the check never saw; val sources choose the epoch.
"""

from __future__ import annotations

import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from retina_desktop.imaging.decode import load_image


@dataclass(frozen=True)
class Negative:
    name: str
    image: Image.Image  # RGB


def _side(name: str, test_fraction: float = 0.3, val_fraction: float = 0.12) -> str:
    """A fixed train/val/test side per source name (a stable hash, not Python's salted one).
    Val sources choose the epoch and fit thresholds; test sources are only ever measured."""
    fraction = (zlib.crc32(name.encode()) % 1000) / 1000
    if fraction < test_fraction:
        return "test"
    return "val" if fraction < test_fraction + val_fraction else "train"


def packaged_files() -> list[Path]:
    """Sample images shipped inside installed packages (whichever of them are installed)."""
    files: list[Path] = []
    import matplotlib
    import sklearn

    sample = Path(matplotlib.__file__).parent / "mpl-data" / "sample_data"
    files += [sample / n for n in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")]
    files += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        # retina.jpg is a fundus photograph: a positive, never a negative.
        files += sorted(p for p in data.glob("*.*") if p.suffix in {".png", ".jpg"} and p.name != "retina.jpg")
    except ImportError:
        pass
    import pydicom

    files += sorted((Path(pydicom.__file__).parent / "data" / "test_files").glob("*.dcm"))
    return [f for f in files if f.is_file()]


def _readable(path: Path) -> Image.Image | None:
    # pydicom logs every oddity of its deliberately odd test files; none of it matters here.
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            image = load_image(path).rgb
        except Exception:  # many pydicom test files are deliberately odd: skip those
            return None
    return image if min(image.size) >= 24 else None


def document(rng: np.random.Generator, size=(600, 800)) -> Image.Image:
    """A page of text-like lines, sometimes with a table or a photo box."""
    page = Image.new("RGB", size, tuple(int(v) for v in rng.integers(225, 256, 3)))
    draw = ImageDraw.Draw(page)
    y = int(rng.integers(20, 60))
    while y < size[1] - 30:
        x = int(rng.integers(20, 60))
        while x < size[0] - 60:
            word = int(rng.integers(15, 70))
            draw.rectangle(
                [x, y, x + word, y + int(rng.integers(6, 11))], fill=tuple(int(v) for v in rng.integers(0, 90, 3))
            )
            x += word + int(rng.integers(6, 14))
        y += int(rng.integers(16, 30))
    if rng.random() < 0.4:
        box = [int(rng.integers(40, 200)), int(rng.integers(40, 300))]
        draw.rectangle([*box, box[0] + 200, box[1] + 140], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return page


def screenshot(rng: np.random.Generator, size=(800, 500)) -> Image.Image:
    """Windows, bars, buttons and text blocks in flat UI colours."""
    shot = Image.new("RGB", size, tuple(int(v) for v in rng.integers(180, 256, 3)))
    draw = ImageDraw.Draw(shot)
    draw.rectangle([0, 0, size[0], 28], fill=tuple(int(v) for v in rng.integers(0, 120, 3)))
    for _ in range(int(rng.integers(4, 14))):
        x0, y0 = int(rng.integers(0, size[0] - 80)), int(rng.integers(30, size[1] - 40))
        x1, y1 = x0 + int(rng.integers(40, 300)), y0 + int(rng.integers(16, 200))
        draw.rectangle([x0, y0, x1, y1], fill=tuple(int(v) for v in rng.integers(0, 256, 3)), outline=(60, 60, 60))
        for line in range(y0 + 6, y1 - 6, 14):
            draw.line(
                [x0 + 6, line, x0 + int(rng.integers(10, max(11, x1 - x0 - 6))), line], fill=(20, 20, 20), width=3
            )
    return shot


def radiograph(rng: np.random.Generator, size=512) -> Image.Image:
    """A chest-radiograph-like image: body outline, two dark lung fields, spine and ribs."""
    yy, xx = np.mgrid[:size, :size] / size
    body = np.exp(-(((xx - 0.5) / 0.42) ** 8 + ((yy - 0.55) / 0.5) ** 8))
    lungs = sum(np.exp(-(((xx - cx) / 0.14) ** 2 + ((yy - 0.5) / 0.26) ** 2)) for cx in (0.32, 0.68))
    spine = np.exp(-((xx - 0.5) / 0.04) ** 2)
    ribs = 0.15 * (np.sin(yy * size / 18 + 3 * (xx - 0.5) ** 2 * 10) > 0.6) * (lungs > 0.2)
    grey = 0.15 + 0.65 * body - 0.45 * lungs + 0.3 * spine + ribs
    grey += rng.normal(0, 0.03, grey.shape)
    grey = np.clip(grey * rng.uniform(0.8, 1.1), 0, 1)
    return Image.fromarray((grey * 255).astype(np.uint8), "L").convert("RGB").filter(ImageFilter.GaussianBlur(1.5))


def texture(rng: np.random.Generator, size=256) -> Image.Image:
    """Noise, gradients or a flat colour: the degenerate inputs a model must not read as eyes."""
    kind = rng.integers(0, 3)
    if kind == 0:
        pixels = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
    elif kind == 1:
        ramp = np.linspace(0, 1, size)
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        pixels = (a + (b - a) * ramp[None, :, None] * np.ones((size, 1, 1))).astype(np.uint8)
    else:
        pixels = np.ones((size, size, 3), np.uint8) * rng.integers(0, 256, 3).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


GENERATORS = {"document": document, "screenshot": screenshot, "radiograph": radiograph, "texture": texture}


def negatives(side: str, per_generator: int = 40, seed: int = 0) -> Iterator[Negative]:
    """Every negative of one side: packaged images whose file is on that side, then generated."""
    for path in packaged_files():
        if _side(path.name) == side:
            image = _readable(path)
            if image is not None:
                yield Negative(f"{path.parent.name}/{path.name}", image)
    offset = {"train": 0, "test": 10_000, "val": 20_000}[side]
    for name, make in GENERATORS.items():
        for i in range(per_generator):
            rng = np.random.default_rng([seed, offset + i, len(name)])
            yield Negative(f"{name}-{side}-{i}", make(rng))


def random_crops(image: Image.Image, n: int, rng: np.random.Generator) -> list[Image.Image]:
    """Crops of 40-100% of the short side (what a user's photo of anything might frame)."""
    out = []
    w, h = image.size
    for _ in range(n):
        side = int(min(w, h) * rng.uniform(0.4, 1.0))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = image.crop((x, y, x + side, y + side))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


if __name__ == "__main__":  # a quick look: python -m training.classifier.negatives OUTDIR
    import sys

    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    for i, negative in enumerate(negatives("test", per_generator=2)):
        negative.image.save(folder / f"{i:03d}_{negative.name.replace('/', '_').replace(os.sep, '_')}.png")
