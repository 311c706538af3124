"""The `synthesize` verb: images of one class from a trained generator, reproducibly.

Image i of a run uses latent `latents(seed, i)` (see `training.gan.trainer`), so the same generator,
label and seed always give the same files, and any single image can be remade from its row in
`manifest.csv` (`file,label,seed,latent_index`). Every file is written atomically.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from retina_desktop.atomic import atomic_save, atomic_write
from retina_desktop.errors import UserError
from training.gan.generator_file import load_generator
from training.gan.trainer import sample


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
