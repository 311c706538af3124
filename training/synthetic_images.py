"""GAN images as extra training images: `classify --synthetic DIR` and `screening-probe --synthetic DIR`.

Owns reading a folder that `synthesize` wrote (PNGs and `manifest.csv`) into training arrays
fitted as real images are. Only such folders are taken: every image must carry the synthetic
marks that `synthesize` writes into its PNG text, so that a folder of patient photographs (a
val or test image among them) cannot be slipped in as "synthetic", and so that what a model
trained on is named in its record.

Whether they help is measured, not assumed: on the learning curve of issue #36
(docs/experiments/gan-curve-fundus/report.md, gan-curve-oct/report.md) neither shipped recipe
gained from them with every real image of a class, so no default adds any.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from training.bounds import MAX_IMAGES

logger = logging.getLogger(__name__)

MANIFEST = "manifest.csv"


def synthetic_files(folder: str | Path, classes: list[str]) -> list[tuple[Path, str]]:
    """(PNG, class) of every image of a `synthesize` folder, checked before any is decoded."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise UserError(f'--synthetic "{folder}": no {MANIFEST}; give a folder that `python -m training synthesize` '
                        "wrote")
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f'--synthetic "{manifest}": cannot be read ({err})') from err
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise UserError(f'--synthetic "{manifest}": needs the columns file and label, as synthesize writes them')
    if len(rows) > MAX_IMAGES:
        raise UserError(f'--synthetic "{manifest}": {len(rows):,} images; at most {MAX_IMAGES:,} a folder')
    files = []
    for row in rows:
        name, label = row["file"] or "", row["label"] or ""
        if label not in classes:
            raise UserError(f'--synthetic "{manifest}": {name} is of class "{label}", not one of {", ".join(classes)}')
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise UserError(f'--synthetic "{manifest}": names "{name}", which is not an image in {folder}')
        files.append((path, label))
    return files


def read_synthetic(folders, classes: list[str], spec) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images fitted to `spec`, class indices) of every image in `folders`."""
    from PIL import Image

    from retina_desktop.imaging.decode import load_image
    from retina_desktop.imaging.preprocessing import fit_image
    from retina_desktop.services.synthetic_samples import is_marked_synthetic

    files = [item for folder in folders for item in synthetic_files(folder, classes)]
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as opened:
                marked = is_marked_synthetic(opened.info)
        except OSError as err:
            raise UserError(f'--synthetic "{path}": not a readable image ({err})') from err
        if not marked:
            raise UserError(f'--synthetic "{path}": not marked as a synthetic image; only what synthesize wrote '
                            "is taken")
        images.append(fit_image(load_image(path).rgb, spec))
    shape = (0, spec.height, spec.width, 3)
    return (np.stack(images) if images else np.zeros(shape, np.uint8),
            np.array([classes.index(label) for _, label in files], dtype=np.int32))


def with_synthetic(train: tuple[np.ndarray, np.ndarray], folders, classes: list[str], spec,
                   log=logger.info) -> tuple[np.ndarray, np.ndarray]:
    """The train split's (images, labels) with the synthetic images of `folders` after them."""
    if not folders:
        return train
    images, labels = read_synthetic(folders, classes, spec)
    counts = {c: int(np.sum(labels == i)) for i, c in enumerate(classes) if np.any(labels == i)}
    shown = ", ".join(f"{c} {n}" for c, n in counts.items())
    log(f"synthetic training images: {shown} (from {len(folders)} folder(s))")
    return np.concatenate([train[0], images]), np.concatenate([train[1].astype(np.int32), labels])
