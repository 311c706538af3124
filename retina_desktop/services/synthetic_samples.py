"""Synthetic images from the project's generators, for the app's Augment tab; no TensorFlow.

A generator on disk is a Keras file (`generator.keras`) with a JSON sidecar beside it
(`generator.json`: its kind, classes, size, latent size) and, for the app, its compiled copy
(`generator.tflite` + manifest, made by `python -m training export` or on first open when
TensorFlow is installed), which `generator_runtime.Generator` runs on the LiteRT interpreter, so
that the packaged app needs no TensorFlow. This module opens generators (compiling on first open),
samples, varies and interpolates them, and exports the images; the names of `generator_runtime`
are importable from here too.

Two kinds:
- "conditional": the class-conditional GAN of `training.gan.trainer`. The compiled copy takes the
  latent vector and the class as *weights* over the classes, (n, classes): a one-hot row is
  exactly the trained generator, and a blend of two rows lets the Augment tab walk from one class
  to another.
- "vessel-to-fundus": the pix2pix generator of `training.pix2pix.trainer`, one input image (vessel mask,
  field of view and style planes, see `vessel_synthesis`).

Latent vector i of a seed is `latents(seed, [i])`, the same function `training.gan.synthesize`
uses, so an image exported from the app can be remade by the training command line from its
manifest row.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.core.paths import models_dir
from retina_desktop.inference.generator_runtime import (  # noqa: F401  (re-exported: the app's names for them)
    CONDITIONAL,
    VESSEL_TO_FUNDUS,
    Generator,
    GeneratorInfo,
    latents,
    one_hot,
    read_generator_info,
    sidecar_path,
    to_uint8,
)
from retina_desktop.inference.litert_backend import model_available
from retina_desktop.inference.open_model import open_generator  # noqa: F401  (re-exported for the views)

GENERATOR_FILE = "generator.keras"


def shipped_generators() -> list[GeneratorInfo]:
    """The generators shipped in models/ (fundus GAN, OCT GAN, vessel-to-fundus), those present."""
    found = []
    for path in (models_dir() / GENERATOR_FILE, models_dir() / "oct" / GENERATOR_FILE,
                 models_dir() / "vessels" / GENERATOR_FILE):
        if model_available(path):
            try:
                found.append(read_generator_info(path))
            except UserError:
                continue  # a broken shipped file is reported by --self-test, not here
    return found


# ---- latent walks (the latents themselves are `generator_runtime.latents`) ------------------


def nudge(latent: np.ndarray, strength: float, seed: int, count: int) -> np.ndarray:
    """`count` latents near `latent`: sqrt(1 - s^2) z + s e keeps them standard normal, so a
    nudged vector is as typical for the generator as the original."""
    strength = float(np.clip(strength, 0.0, 1.0))
    noise = np.random.default_rng([seed, 7919]).standard_normal((count, latent.shape[-1])).astype(np.float32)
    return (np.sqrt(1.0 - strength**2) * latent[None, :] + strength * noise).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation between two latents (Gaussian latents live near a sphere, so a
    straight line between them passes through atypically short vectors)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return ((1 - t) * a + t * b).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)).astype(np.float32)


# ---- samples, and exporting them --------------------------------------------------------------


@dataclass
class SyntheticImage:
    """One generated image and how to make it again."""

    pixels: np.ndarray  # uint8 (size, size, 3)
    label: str  # class name, or "glaucoma→normal 40%"-style for a blend
    seed: int | None = None
    latent_index: int | None = None  # latent = latents(seed, [latent_index]) when not None
    note: str = ""  # e.g. "vary 0.3 of #5", "interpolation 3/8"
    predicted: str = ""  # filled in when the classifier judged it
    confidence: float | None = None
    kind: str = ""  # how it was made when not sampled directly: "vary", "interpolation"


def as_seen(info: GeneratorInfo, image: SyntheticImage):
    """The image as a PIL image at its generator's display proportions (widened, never shrunk)."""
    from PIL import Image

    picture = Image.fromarray(image.pixels)
    if abs(info.display_aspect - 1.0) < 0.01:
        return picture
    width, height = picture.size
    if info.display_aspect > 1:
        return picture.resize((round(height * info.display_aspect), height), Image.Resampling.BICUBIC)
    return picture.resize((width, round(width / info.display_aspect)), Image.Resampling.BICUBIC)


def sample(generator: Generator, label: str, n: int, seed: int, start: int = 0) -> list[SyntheticImage]:
    """`n` images of `label`; image i uses latent (seed, start + i), as `training synthesize` does."""
    classes = generator.info.classes
    if label not in classes:
        raise UserError(f"{label!r} is not a class of this generator ({', '.join(classes)})")
    indices = list(range(start, start + n))
    z = latents(seed, indices, generator.info.latent_dim)
    pixels = generator.generate(z, one_hot([classes.index(label)] * n, len(classes)))
    return [SyntheticImage(p, label, seed, i) for p, i in zip(pixels, indices)]


def vary(generator: Generator, image: SyntheticImage, n: int, strength: float, seed: int) -> list[SyntheticImage]:
    """`n` images of the same class with the latent of `image` nudged by `strength` (0..1)."""
    if image.latent_index is None or image.seed is None or image.label not in generator.info.classes:
        raise UserError("Only images sampled directly from the generator can be varied.")
    base = latents(image.seed, [image.latent_index], generator.info.latent_dim)[0]
    z = nudge(base, strength, seed, n)
    classes = generator.info.classes
    pixels = generator.generate(z, one_hot([classes.index(image.label)] * n, len(classes)))
    note = f"vary {strength:.2f} of seed {image.seed} #{image.latent_index} (nudge seed {seed})"
    return [SyntheticImage(p, image.label, note=f"{note}, {k + 1}/{n}", kind="vary") for k, p in enumerate(pixels)]


def interpolate(generator: Generator, start: tuple[str, int, int], end: tuple[str, int, int],
                steps: int = 8) -> list[SyntheticImage]:
    """A strip from (label, seed, index) to another: latents by slerp, classes blended linearly.

    A generator that learnt the data changes gradually along the strip; one that memorised a
    few images jumps between them.
    """
    classes = generator.info.classes
    for label, _, _ in (start, end):
        if label not in classes:
            raise UserError(f"{label!r} is not a class of this generator ({', '.join(classes)})")
    dim = generator.info.latent_dim
    z = slerp(latents(start[1], [start[2]], dim)[0], latents(end[1], [end[2]], dim)[0], steps)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    weights = (1 - t) * one_hot([classes.index(start[0])], len(classes)) + t * one_hot(
        [classes.index(end[0])], len(classes)
    )
    pixels = generator.generate(z, weights)
    out = []
    for k, p in enumerate(pixels):
        label = start[0] if start[0] == end[0] else f"{start[0]}→{end[0]} {t[k, 0]:.0%}"
        out.append(SyntheticImage(p, label, note=f"interpolation {k + 1}/{steps} from {start} to {end}",
                                  kind="interpolation"))
    return out


MANIFEST_COLUMNS = ("file", "generator", "label", "seed", "latent_index", "note", "predicted", "confidence")
# Every exported file name starts with this, so that no synthetic image passes for a patient's
# ("cataract_002.png" next to real photographs would).
SYNTHETIC_PREFIX = "synthetic_"
# Where exports go unless the user chooses: a folder of their own, never where patient images
# were last opened (a batch folder), so that the two cannot mix by default.
SYNTHETIC_FOLDER_NAME = "Retina Desktop synthetic"
_KIND_IN_NAME = {"vary": "vary", "interpolation": "interp"}


def default_export_folder() -> Path:
    """`<the user's documents folder>/Retina Desktop synthetic` (not created here)."""
    import platformdirs

    return Path(platformdirs.user_documents_dir()) / SYNTHETIC_FOLDER_NAME


def export_names(images: list[SyntheticImage]) -> list[str]:
    """File names that say what each image is (always starting "synthetic_"); stable, so
    exporting twice names files alike."""
    names = []
    for k, image in enumerate(images):
        label = "".join(c if c.isalnum() or c in "_-" else "_" for c in image.label)
        stem = SYNTHETIC_PREFIX + "_".join(part for part in label.split("_") if part)
        if image.latent_index is not None:
            names.append(f"{stem}_s{image.seed}_i{image.latent_index:05d}.png")
        else:
            kind = _KIND_IN_NAME.get(image.kind, image.kind)
            names.append(f"{stem}{'_' + kind if kind else ''}_{k + 1:03d}.png")
    seen: dict[str, int] = {}
    for k, name in enumerate(names):  # two blends of the same label in one export
        if name in seen:
            names[k] = name.replace(".png", f"_{k + 1:03d}.png")
        seen[names[k]] = k
    return names


def generator_label(generator_path: str | Path) -> str:
    """How a generator is named inside its images: "models/generator.keras"-style."""
    path = Path(generator_path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


SYNTHETIC_MARK = ("Synthetic", "true")  # the PNG text entry every synthetic image carries


def is_marked_synthetic(png_text: dict) -> bool:
    """Whether a PNG's text entries (Pillow's `Image.info`) carry the synthetic mark."""
    key, value = SYNTHETIC_MARK
    return png_text.get(key) == value


def synthetic_png_info(image: SyntheticImage, generator_path: str | Path):
    """PNG text chunks that mark the file as synthetic and say how to make it again: the
    generator, class, seed, latent index and note, and a plain "not a patient image"."""
    from PIL.PngImagePlugin import PngInfo

    generator = generator_label(generator_path)
    info = PngInfo()
    # "Description" and "Software" are registered PNG keywords that image viewers show.
    info.add_text("Description", f"synthetic image made by {generator}; not a patient image")
    info.add_text("Software", "Retina Desktop")
    info.add_text(*SYNTHETIC_MARK)
    info.add_text("Generator", str(generator_path))
    info.add_text("Class", image.label)
    info.add_text("Seed", "" if image.seed is None else str(image.seed))
    info.add_text("Latent index", "" if image.latent_index is None else str(image.latent_index))
    if image.note:
        info.add_text("Note", image.note)
    return info


def export_conflicts(images: list[SyntheticImage], folder: str | Path) -> list[Path]:
    """The files an export of `images` into `folder` would replace (images and manifest)."""
    folder = Path(folder)
    targets = [folder / name for name in export_names(images)] + [folder / "manifest.csv"]
    return [p for p in targets if p.exists()]


def export_images(images: list[SyntheticImage], folder: str | Path, generator_path: str | Path, *,
                  overwrite: bool = False) -> list[Path]:
    """Write PNGs and `manifest.csv` into `folder`, each atomically; returns the paths written.
    Every PNG is named "synthetic_…" and carries `synthetic_png_info`'s text chunks.

    Raises `UserError` listing the files that already exist unless `overwrite` is set, so a
    caller can ask before anything is replaced.
    """
    from PIL import Image

    if not images:
        raise UserError("There are no images to export.")
    folder = Path(folder)
    names = export_names(images)
    existing = export_conflicts(images, folder)
    if existing and not overwrite:
        shown = ", ".join(p.name for p in existing[:5]) + (" …" if len(existing) > 5 else "")
        raise UserError(f'{len(existing)} file(s) already exist in "{folder}": {shown}')
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in zip(names, images):
        path = folder / name
        chunks = synthetic_png_info(image, generator_path)
        atomic_save(path, lambda tmp, px=image.pixels, info=chunks: Image.fromarray(px).save(
            tmp, format="PNG", pnginfo=info))
        written.append(path)
    with atomic_write(folder / "manifest.csv", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for name, image in zip(names, images):
            writer.writerow([name, str(generator_path), image.label, "" if image.seed is None else image.seed,
                             "" if image.latent_index is None else image.latent_index, image.note, image.predicted,
                             "" if image.confidence is None else f"{image.confidence:.4f}"])
    written.append(folder / "manifest.csv")
    return written
