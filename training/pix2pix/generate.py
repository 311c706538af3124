"""The `pix2pix-generate` verb: fundus photographs drawn from vessel masks, in a chosen style.

`--mask` takes mask files (a drawing, a segmentation), plain folders of them, or pairs folders
(with vessels/, and fov/ or image/ beside it). The field of view comes from --fov (one mask
only), a pairs folder's fov/ mask, its photograph (estimated), or else a centred disc. --style
picks the colour style: masks of one data set drawn in another's colours, e.g. CHASE_DB1's
vessels with `--style drive`. Each output is `<mask name>.png`, or --out itself when it names
one .png for one mask.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.errors import UserError
from retina_desktop.imaging.decode import IMAGE_EXTENSIONS, load_image
from retina_desktop.services.vessel_synthesis import estimate_fov, generator_input, load_mask
from training.pix2pix.config import Pix2PixGenerateOptions
from training.pix2pix.evaluate import load_vessel_generator

logger = logging.getLogger(__name__)


def mask_jobs(paths: list[str], fov: str | None) -> list[tuple[str, Path, object]]:
    """(output name, vessel mask file, fov source) per mask: a Path to a FOV mask, ("photo",
    Path) for a FOV estimated from a photograph, or None for the default disc."""
    jobs: list[tuple[str, Path, object]] = []
    for entry in map(Path, paths):
        if entry.is_file():
            jobs.append((entry.stem, entry, Path(fov) if fov else None))
        elif (entry / "vessels").is_dir():
            for mask in sorted((entry / "vessels").iterdir()):
                if mask.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                fov_mask = _same_stem(entry / "fov", mask.stem)
                photo = _same_stem(entry / "image", mask.stem)
                jobs.append((mask.stem, mask, fov_mask or (("photo", photo) if photo else None)))
        elif entry.is_dir():
            jobs += [(p.stem, p, None) for p in sorted(entry.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
        else:
            raise UserError(f'Mask not found: "{entry}"')
    if fov and (len(jobs) != 1 or not Path(paths[0]).is_file()):
        raise UserError("--fov goes with exactly one --mask file")
    if not jobs:
        raise UserError(f"no mask images in {', '.join(paths)}")
    if len({name for name, _, _ in jobs}) != len(jobs):
        raise UserError("two masks share a file name; their outputs would overwrite each other")
    return jobs


def _same_stem(folder: Path, stem: str) -> Path | None:
    if not folder.is_dir():
        return None
    return next((p for p in sorted(folder.iterdir()) if p.stem == stem and p.suffix.lower() in IMAGE_EXTENSIONS), None)


GRID_ROWS = 6


def _grid_row(generator, spec, vessels, fov, photo: Path | None) -> np.ndarray:
    """[mask | one image per style | the photograph the mask was drawn from, if known]."""
    from PIL import Image

    from training.pix2pix.trainer import generate

    size = spec.size
    mask = np.asarray(
        Image.fromarray(vessels.astype(np.uint8) * 255).resize((size, size), Image.Resampling.BOX).convert("RGB")
    )
    cells = [mask] + [generate(generator, generator_input(vessels, fov, s, spec.styles, size))[0] for s in spec.styles]
    if photo is not None:
        cells.append(np.asarray(load_image(photo).rgb.resize((size, size), Image.Resampling.LANCZOS)))
    else:
        cells.append(np.zeros_like(mask))
    return np.concatenate(cells, axis=1)


def run_pix2pix_generate(options: Pix2PixGenerateOptions) -> Path:
    """`pix2pix-generate`: draw a photograph for every mask in `options.style`; returns where they went."""
    from PIL import Image
    from tqdm import tqdm

    from training.pix2pix.trainer import generate  # loads Keras, as the generator has

    generator, spec = load_vessel_generator(options.model)
    style = options.style or (spec.styles[0] if len(spec.styles) == 1 else None)
    if style is None:
        raise UserError(f"--style is needed: the generator knows {', '.join(spec.styles)}")
    jobs = mask_jobs(list(options.mask), options.fov)
    out = Path(options.out)
    single_file = len(jobs) == 1 and out.suffix.lower() == ".png"
    started = time.perf_counter()
    rows: list[np.ndarray] = []
    for name, mask_path, fov_source in tqdm(jobs, desc="generating", unit="img", disable=len(jobs) < 2):
        vessels = load_mask(mask_path, "vessel mask")
        if isinstance(fov_source, Path):
            fov = load_mask(fov_source, "field-of-view mask")
        elif isinstance(fov_source, tuple):
            fov = estimate_fov(np.asarray(load_image(fov_source[1]).rgb))
        else:
            fov = None
        if fov is not None and fov.shape != vessels.shape:
            raise UserError(f'"{mask_path}" is {vessels.shape[1]} x {vessels.shape[0]} but its field of view '
                            f"is {fov.shape[1]} x {fov.shape[0]}")
        image = generate(generator, generator_input(vessels, fov, style, spec.styles, spec.size))[0]
        target = out if single_file else out / f"{name}.png"
        atomic_save(target, Image.fromarray(image).save)
        if options.grid and len(rows) < GRID_ROWS:
            photo = (
                _same_stem(mask_path.parent.parent / "image", mask_path.stem)
                if mask_path.parent.name == "vessels"
                else None
            )
            rows.append(_grid_row(generator, spec, vessels, fov, photo))
    if rows:
        atomic_save(Path(options.grid), Image.fromarray(np.concatenate(rows, axis=0)).save)
        logger.info(f"wrote {options.grid}: mask | {' | '.join(spec.styles)} | the mask's own photograph (when known)")
    seconds = time.perf_counter() - started
    logger.info(f"wrote {len(jobs)} synthetic {spec.size} x {spec.size} image(s) in style {style} to {out} "
                f"({seconds / len(jobs):.2f} s each, reading included); model output, not patient data")
    return out
