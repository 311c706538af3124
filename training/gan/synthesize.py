"""The `synthesize` verb: images of one class from a trained generator, reproducibly.

Image i of a run uses latent `latents(seed, i)` (see `training.gan.trainer`), so the same generator,
label and seed always give the same files, and any single image can be remade from its row in
`manifest.csv` (`file,label,seed,latent_index`). Every file is written atomically, as it is made
(memory stays one batch), and marked synthetic inside the PNG as the app's exports are.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.services.synthetic_samples import SyntheticImage, synthetic_png_info
from training.bounds import MAX_IMAGES
from training.gan.config import SynthesizeOptions
from training.gan.generator_file import load_generator
from training.gan.trainer import sample

logger = logging.getLogger(__name__)


def synthesize(generator, classes: list[str], label: str, n: int, out_dir: Path, seed: int,
               generator_path: str | Path = "", batch_size: int = 64) -> list[Path]:
    """Write `n` PNGs of `label` and `manifest.csv` to `out_dir`; return the image paths.

    Images are written as each batch is made, so memory stays one batch whatever `n` is, and
    each carries the app's "synthetic" PNG text chunks (`samples.synthetic_png_info`) naming
    `generator_path`, so that no copy of it can pass for a patient image.
    """
    from PIL import Image

    if label not in classes:
        raise UserError(f"--label {label}: the generator knows {', '.join(classes)}")
    if not 1 <= n <= MAX_IMAGES:
        raise UserError(f"--n {n}: give 1 to {MAX_IMAGES:,} images per run (another --seed makes more)")
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    out_dir.mkdir(parents=True, exist_ok=True)
    index = classes.index(label)
    paths = []
    with atomic_write(out_dir / "manifest.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "seed", "latent_index"])
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            images = sample(generator, np.full(count, index, np.int32), seed, start=start)
            for i, pixels in enumerate(images, start):
                path = out_dir / f"{label}_s{seed}_{i:05d}.png"
                chunks = synthetic_png_info(SyntheticImage(pixels, label, seed, i), generator_path)
                atomic_save(path, lambda tmp, px=pixels, info=chunks: Image.fromarray(px).save(
                    tmp, format="PNG", pnginfo=info))
                paths.append(path)
                writer.writerow([path.name, label, seed, i])
    return paths


def run_synthesize(options: SynthesizeOptions) -> list[Path]:
    """`synthesize`: write `options.n` images of `options.label` from the generator; returns their files."""
    generator, sidecar = load_generator(options.generator)
    out = Path(options.out)
    paths = synthesize(generator, list(sidecar["classes"]), options.label, options.n, out, options.seed,
                       options.generator)
    logger.info(f"wrote {len(paths)} synthetic {options.label} images and manifest.csv to {out}")
    return paths
