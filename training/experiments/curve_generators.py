"""The learning curve's generators: one per (scarce class, point), each made only from real
images that the point's classifiers also see.

Owns how a point's generator is made, mirroring how the shipped one was (docs/gan-fundus.md,
sixth attempt): a four-class base GAN, then each class fine-tuned alone from it for a few
hundred steps with the two-timescale rule that won there (generator 1e-4, discriminator 8e-4).

The rule that keeps the curve honest is that no held-back real image reaches a classifier
through a generator. The shipped generator, and every one it was fine-tuned from, learned from
every training image of the scarce classes, so none of them may start a point's generator.
The base here is trained from random weights on the train split with every scarce class cut to
the curve's smallest point. The points are nested (the 25 images of the first point are among
the 50 of the second, and so on), so the base has seen nothing that any point's classifier
does not see, and one base serves every point of every class.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_write
from training.datasets import drawn_order

logger = logging.getLogger(__name__)

GENERATOR_FILE = "generator.keras"
# A fine-tune epoch holds at least this many draws, so that a 25-image class does not end an
# epoch (a checkpoint and a sample grid) every step.
MIN_EPOCH_ROWS = 480


@dataclass(frozen=True)
class GeneratorRecipe:
    """The base GAN and the per-class fine-tunes: the shipped recipe's architecture and rates."""

    size: int = 128
    width: int = 16
    d_width: int = 32
    fit: str = "fov"
    loss: str = "hinge"
    r1_gamma: float = 0.0
    base_epochs: int = 8
    finetune_steps: int = 300  # the shipped glaucoma fine-tune's chosen step (20 epochs of 15)
    finetune_g_learning_rate: float = 1e-4
    finetune_d_learning_rate: float = 8e-4
    finetune_d_width: int = 0  # the shipped fine-tunes' fresh discriminator: as wide as the generator

    def spec(self):
        from retina_desktop.core.model_card import InputSpec

        return InputSpec(self.size, self.size, self.fit, "none")


# Each modality's shipped generator recipe. The OCT GAN collapsed with the hinge loss three
# times and trained with the non-saturating loss and R1 (gamma 0.2), on whole B-scans stretched
# to squares (docs/gan-oct.md); it learns from scratch in 100 epochs of the base, not 8, because
# the fundus base's 8 epochs are of a much larger train split (1,679 against 529 images).
RECIPES = {
    "fundus": GeneratorRecipe(),
    "oct": GeneratorRecipe(width=8, d_width=0, fit="stretch", loss="nonsaturating", r1_gamma=0.2, base_epochs=100),
}


def _train_and_save(dataset, samples, gan_config, folder: Path, data: str, modality: str, fit: str,
                    log, repeat_to: int = 0) -> Path:
    """Train `gan_config` on `samples` into `folder` (resuming an interrupted run) and write the
    EMA generator with its sidecar; return the generator's path. Done once: an existing
    generator is returned as it is."""
    from retina_desktop.core.model_card import InputSpec
    from training.datasets import display_aspect, load_arrays
    from training.gan.train import generator_sidecar, save_generator
    from training.gan.trainer import train_gan

    path = folder / GENERATOR_FILE
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "trained_on.csv", newline="") as handle:
        handle.write("file,label\n" + "".join(f"{s.file},{s.label}\n" for s in samples))
    images, indices = load_arrays(dataset, samples, InputSpec(gan_config.size, gan_config.size, fit, "none"),
                                  progress=False)
    names = [dataset.classes[i] for i in indices]
    labels = np.array([gan_config.labels.index(n) for n in names], dtype=np.int32)
    counts = {c: int(np.sum(labels == i)) for i, c in enumerate(gan_config.labels)}
    if repeat_to and len(images) < repeat_to:  # a longer epoch of the same images, drawn alike
        reps = math.ceil(repeat_to / len(images))
        images, labels = np.tile(images, (reps, 1, 1, 1)), np.tile(labels, reps)
    name = folder.name if folder.name == "base" else f"{folder.parent.name} {folder.name}"
    log(f"GAN {name}: {gan_config.epochs} epochs on {sum(counts.values())} images "
        f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
    gan, state = train_gan(gan_config, images, labels, folder, resume=True, verbose=0, log=log)
    sidecar = generator_sidecar(gan_config, counts, display_aspect(dataset, samples, fit), state.epoch,
                                state.seconds, modality=modality, fit=fit, data=data)
    sidecar["provenance"]["trained_on"] = "trained_on.csv (only images the point's classifiers also see)"
    save_generator(gan.ema_generator, path, sidecar)
    log(f"GAN {name}: {state.seconds / 60:.1f} min")
    return path


def base_generator(dataset, train, scarce: tuple[str, ...], smallest: int, recipe: GeneratorRecipe,
                   out: Path, data: str, modality: str, log=logger.info) -> Path:
    """The four-class base: the train split with each scarce class cut to the smallest point."""
    from training.gan.config import GanConfig

    kept = {s.file for label in scarce for s in drawn_order(train, label)[:smallest]}
    samples = [s for s in train if s.label not in scarce or s.file in kept]
    config = _started_config(out, GanConfig(
        size=recipe.size, width=recipe.width, d_width=recipe.d_width, loss=recipe.loss, r1_gamma=recipe.r1_gamma,
        epochs=recipe.base_epochs, seed=0, labels=tuple(dataset.classes)))
    return _train_and_save(dataset, samples, config, out, data, modality, recipe.fit, log)


def point_generator(dataset, train, label: str, n: int, base: Path, recipe: GeneratorRecipe, out: Path,
                    data: str, modality: str, log=logger.info) -> Path:
    """`label` alone, fine-tuned from the base on the point's n real images."""
    from training.gan.config import GanConfig

    samples = drawn_order(train, label)[:n]
    rows = max(len(samples), MIN_EPOCH_ROWS)
    steps_per_epoch = max(1, rows // 16)
    config = _started_config(out, GanConfig(
        size=recipe.size, width=recipe.width, d_width=recipe.finetune_d_width, loss=recipe.loss,
        r1_gamma=recipe.r1_gamma,
        g_learning_rate=recipe.finetune_g_learning_rate, d_learning_rate=recipe.finetune_d_learning_rate,
        epochs=max(1, round(recipe.finetune_steps / steps_per_epoch)), seed=0, labels=(label,),
        init_generator=str(base)))
    return _train_and_save(dataset, samples, config, out, data, modality, recipe.fit, log, repeat_to=MIN_EPOCH_ROWS)


def _started_config(folder: Path, config):
    """The config a GAN folder started with (an interrupted run resumes exactly), else `config`."""
    from training.gan.config import GanConfig

    started = folder / "gan_config.json"
    if started.is_file():
        return GanConfig.from_dict(json.loads(started.read_text()))
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(started) as handle:
        json.dump(config.to_dict(), handle, indent=2)
    return config
