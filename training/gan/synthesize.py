"""The `synthesize` verb: images of one class from a trained generator, reproducibly.

Image i of a run uses latent `latents(seed, i)` (see `training.gan.trainer`), so the same generator,
label and seed always give the same files, and any single image can be remade from its row in
`manifest.csv` (`file,label,seed,latent_index`). Every file is written atomically.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from retina_desktop.atomic import atomic_save, atomic_write
from retina_desktop.errors import UserError
from retina_desktop.quiet import import_keras
from training.gan.trainer import sample


def load_generator(path: str | Path):
    """(Keras generator, its sidecar dict); the sidecar `<name>.json` is required for its classes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'Generator not found: "{path}"')
    sidecar_file = path.with_suffix(".json")
    if not sidecar_file.is_file():
        raise UserError(f'"{path}" has no sidecar "{sidecar_file}" naming its classes; was it made by `python -m training gan`?')
    sidecar = json.loads(sidecar_file.read_text())
    keras = import_keras()
    try:
        generator = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise UserError(f'"{path}" could not be loaded as a Keras generator: {err}') from err
    return generator, sidecar


def synthesize(generator, classes: list[str], label: str, n: int, out_dir: Path, seed: int) -> list[Path]:
    """Write `n` PNGs of `label` and `manifest.csv` to `out_dir`; return the image paths."""
    from PIL import Image

    if label not in classes:
        raise UserError(f"--label {label}: the generator knows {', '.join(classes)}")
    if n < 1:
        raise UserError("--n must be at least 1")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    out_dir.mkdir(parents=True, exist_ok=True)
    index = classes.index(label)
    images = sample(generator, np.full(n, index, np.int32), seed)
    paths, rows = [], []
    for i, pixels in enumerate(images):
        path = out_dir / f"{label}_s{seed}_{i:05d}.png"
        atomic_save(path, Image.fromarray(pixels).save)
        paths.append(path)
        rows.append([path.name, label, seed, i])
    with atomic_write(out_dir / "manifest.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "seed", "latent_index"])
        writer.writerows(rows)
    return paths


def run_synthesize(args) -> int:
    generator, sidecar = load_generator(args.generator)
    out = Path(args.out)
    paths = synthesize(generator, list(sidecar["classes"]), args.label, args.n, out, args.seed)
    print(f"wrote {len(paths)} synthetic {args.label} images and manifest.csv to {out}")
    return 0
