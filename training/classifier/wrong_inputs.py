"""Realistic wrong inputs: images an eye clinic could feed by mistake, for teaching and testing the
modality check.

Two origins, each with a fixed side ("train", "val" or "test") that never changes:

- real images in a `wrong-inputs/` folder of kind sub-folders (`fluorescein-angiogram/`,
  `oct-angiography/`): each file's side is a stable hash of its file name (crc32, not Python's
  salted hash), about 40% test, 15% val, 45% train, so the test part is never trained on nor
  used to fit a threshold;
- greyscale kinds made from real colour fundus photographs (a red-free photograph is the green
  channel, shown grey or green; a plain greyscale copy is the luminance): train from the fundus
  data set's train split, val from val, test from test, so they follow its patient grouping.

Nothing here is downloaded. The folder's kinds are read from its sub-folders, so a kind added
to the data (`lens-photo/`: 15 slit-lamp and retro-illumination photographs of the lens) is taught
and measured without a change here; with 15 examples its test part is 5 photographs.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from retina_desktop.imaging.decode import IMAGE_EXTENSIONS, load_image

SIDES = ("train", "val", "test")
TEST_FRACTION = 0.4
VAL_FRACTION = 0.15
# Kinds made from colour fundus photographs, and how each is made from an RGB array.
FUNDUS_KINDS = ("red-free", "red-free-green", "greyscale-fundus")


@dataclass(frozen=True)
class WrongInput:
    kind: str
    name: str
    image: Image.Image  # RGB


def side_of(name: str) -> str:
    """The fixed side of a file name: a stable hash, so the test part never moves."""
    fraction = (zlib.crc32(name.encode()) % 10_000) / 10_000
    if fraction < TEST_FRACTION:
        return "test"
    return "val" if fraction < TEST_FRACTION + VAL_FRACTION else "train"


def folder_files(root: str | Path, side: str) -> list[tuple[str, Path]]:
    """(kind, path) of every image of `side` under `root`'s kind folders, sorted."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, not {side!r}")
    root = Path(root)
    out = []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_EXTENSIONS and side_of(path.name) == side:
                out.append((folder.name, path))
    return out


def make_kind(rgb: Image.Image, kind: str) -> Image.Image:
    """A red-free or greyscale version of a colour fundus photograph, as RGB."""
    pixels = np.asarray(rgb.convert("RGB"))
    if kind == "red-free":
        grey = pixels[..., 1]
    elif kind == "red-free-green":  # some viewers show the green channel green, not grey
        out = np.zeros_like(pixels)
        out[..., 1] = pixels[..., 1]
        return Image.fromarray(out, "RGB")
    elif kind == "greyscale-fundus":
        grey = np.asarray(rgb.convert("L"))
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return Image.fromarray(np.repeat(grey[..., None], 3, axis=2), "RGB")


def fundus_files(fundus_root: str | Path, side: str, per_kind: int) -> list[tuple[str, Path]]:
    """(kind, path): `per_kind` photographs of the fundus data set's split `side` for each kind,
    evenly spaced through the sorted split and different photographs for each kind."""
    from training.datasets import load_dataset

    dataset = load_dataset(fundus_root)
    files = sorted(s.file for s in dataset.subset(side))
    out = []
    if not files:
        return out
    step = max(1, len(files) // (per_kind * len(FUNDUS_KINDS)))
    for k, kind in enumerate(FUNDUS_KINDS):
        chosen = files[k * step :: step * len(FUNDUS_KINDS)][:per_kind]
        out += [(kind, dataset.root / f) for f in chosen]
    return out


def wrong_inputs(
    root: str | Path | None, side: str, fundus: str | Path | None = None, per_kind: int = 100
) -> Iterator[WrongInput]:
    """Every wrong input of one side: the real ones under `root`, then the fundus-made kinds."""
    if root is not None:
        for kind, path in folder_files(root, side):
            yield WrongInput(kind, f"{kind}/{path.name}", load_image(path).rgb)
    if fundus is not None:
        for kind, path in fundus_files(fundus, side, per_kind):
            yield WrongInput(kind, f"{kind}/{path.name}", make_kind(load_image(path).rgb, kind))
