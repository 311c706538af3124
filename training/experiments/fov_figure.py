"""The `fov-figure` verb: photographs as their cameras framed them, above the same photographs
after field-of-view standardisation (`retina_desktop.imaging.fov`), with the fitted rim drawn in.

The picture in docs/field-of-view.md comes from this command; it shows a person what the
models see whatever the camera.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.errors import UserError
from retina_desktop.imaging.decode import load_image
from retina_desktop.imaging.fov import find_field_of_view, standardise_field_of_view
from training.experiments.config import FovFigureOptions

logger = logging.getLogger(__name__)
CELL = 220


def run_fov_figure(options: FovFigureOptions) -> Path:
    """`fov-figure`: draw the sheet of photographs before and after standardisation; returns its file."""
    rng = np.random.default_rng(options.seed)
    picked: list[tuple[str, Path]] = []
    for folder in map(Path, options.data):
        splits = folder / "splits.csv"
        if not splits.is_file():
            raise UserError(f'No splits.csv in "{folder}" (expected a data set folder)')
        with open(splits, newline="") as handle:
            rows = list(csv.DictReader(handle))
        by_source: dict[str, list[str]] = {}
        for row in rows:
            by_source.setdefault(row.get("source") or folder.name, []).append(row["file"])
        for source, files in sorted(by_source.items()):
            for file in rng.choice(sorted(files), min(options.per_source, len(files)), replace=False):
                picked.append((source, folder / file))
    sheet = Image.new("RGB", (CELL * len(picked), 2 * CELL + 24), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (source, path) in enumerate(picked):
        image = load_image(path).rgb
        circle = find_field_of_view(np.asarray(image))
        before = image.copy()
        if circle is not None:  # the fitted rim, over the camera's framing
            outline = ImageDraw.Draw(before)
            width = max(2, image.width // 150)
            outline.ellipse((circle.cx - circle.r, circle.cy - circle.radius_y,
                             circle.cx + circle.r, circle.cy + circle.radius_y), outline=(0, 255, 0), width=width)
        before.thumbnail((CELL - 10, CELL - 10))
        sheet.paste(before, (i * CELL + (CELL - before.width) // 2, 24 + (CELL - before.height) // 2))
        after = standardise_field_of_view(image, (CELL - 10, CELL - 10), circle)
        if after is not None:
            sheet.paste(Image.fromarray(after), (i * CELL + 5, 24 + CELL + 5))
        label = f"{source} {image.width}x{image.height}" + ("" if circle else " (no rim)")
        draw.text((i * CELL + 5, 5), label, fill=(0, 0, 0))
        logger.info(f"{path}: {'rim ' + _describe(circle) if circle else 'no rim found'}")
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(out, lambda tmp: sheet.save(tmp, "PNG"))
    logger.info(f"wrote {out} ({len(picked)} photographs)")
    return out


def _describe(circle) -> str:
    if circle.ry is None:
        return f"circle centre ({circle.cx:.0f}, {circle.cy:.0f}) radius {circle.r:.0f}"
    return f"ellipse centre ({circle.cx:.0f}, {circle.cy:.0f}) radii {circle.r:.0f} x {circle.radius_y:.0f}"
