"""The pipeline's data stage: each setting's training images (the `cut` draw), the real images
of every split at the classifier's size, the external set's, and the counts the GAN tops up.

Nothing here trains: the arrays are decoded once per run folder (and cached on disk by
`training.datasets.load_arrays`); every other stage reads them from here.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.errors import UserError
from training.datasets import drawn_order
from training.experiments.config import PipelineConfig


def scarce_cut(dataset, scarce: tuple[str, ...], n: int, seed: int = 0) -> list:
    """The cut setting's training samples: each scarce class drawn down to `n` of its train
    images, the other classes whole. The draw depends only on (seed, class, file names)."""
    train = dataset.subset("train")
    kept: set[str] = set()
    for label in scarce:
        members = drawn_order(train, label, seed)
        if n >= len(members):
            raise UserError(
                f"--scarce-n {n}: the train split of {dataset.root} has only {len(members)} {label} "
                "images, so the cut setting would not cut; choose a smaller --scarce-n"
            )
        kept.update(s.file for s in members[:n])
    return [s for s in train if s.label not in scarce or s.file in kept]


def samples_fingerprint(samples) -> str:
    """A digest of (file, label, split) of every sample: a run folder is bound to its data."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.file}|{s.label}|{s.split}\n".encode())
    return digest.hexdigest()


def write_samples(path: Path, samples) -> None:
    """A file,label CSV of `samples` (which images a GAN learnt from, the cut)."""
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows([s.file, s.label] for s in samples)


def read_samples_csv(path: Path) -> list[tuple[str, str]]:
    """(file, label) rows of a CSV written by `write_samples` (or a synthesis manifest)."""
    with open(path, newline="") as handle:
        return [(row["file"], row["label"]) for row in csv.DictReader(handle)]


class ExperimentData:
    """The images of one experiment, each split decoded once and kept."""

    def __init__(self, config: PipelineConfig, dataset):
        self.config, self.dataset = config, dataset
        missing = [c for c in config.scarce if c not in dataset.classes]
        if missing:
            raise UserError(
                f"--scarce {','.join(missing)}: not a class of {dataset.root} ({', '.join(dataset.classes)})")
        self.classes = dataset.classes
        self.cut = scarce_cut(dataset, config.scarce, config.scarce_n, config.cut_seed)
        self._arrays: dict = {}

    def train_samples(self, setting: str) -> list:
        """The training images of a setting: the cut draw, or the whole train split."""
        return self.cut if setting == "cut" else self.dataset.subset("train")

    def spec(self, size: int | None = None):
        """How real images are fitted: square at `size` (default: the classifier's), the run's fit."""
        from retina_desktop.core.model_card import InputSpec

        size = size or self.config.size
        return InputSpec(size, size, self.config.fit, "none")

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Real images of a split at the classifier's size (decoded once, cached on disk too)."""
        if split not in self._arrays:
            from training.datasets import load_arrays

            self._arrays[split] = load_arrays(self.dataset, self.dataset.subset(split), self.spec())
        return self._arrays[split]

    def real_train(self, setting: str) -> tuple[np.ndarray, np.ndarray]:
        """The real training images of a setting (rows of the train arrays), with their labels."""
        x, y = self.arrays("train")
        kept = {s.file for s in self.train_samples(setting)}
        mask = np.array([s.file in kept for s in self.dataset.subset("train")], dtype=bool)
        return x[mask], y[mask]

    def counts(self, samples) -> dict[str, int]:
        """Images per class of `samples`, every class named."""
        return {c: sum(s.label == c for s in samples) for c in self.classes}

    def synthetic_counts(self, setting: str) -> dict[str, int]:
        """GAN images per scarce class: enough to reach the target count."""
        real = self.counts(self.train_samples(setting))
        target = self.config.gan_target or max(real.values())
        return {c: max(0, target - real[c]) for c in self.config.scarce}

    def judged_images(self) -> np.ndarray:
        """The images each classifier predicts: the test split, then the external set's."""
        test_x = self.arrays("test")[0]
        return np.concatenate([test_x, self.external_arrays()[0]]) if self.config.external else test_x

    def external_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The external set's test images at the classifier's size, labels as this data's indices."""
        if "external" not in self._arrays:
            from training.datasets import class_indices, load_arrays, load_dataset

            external = load_dataset(self.config.external)
            index_of = class_indices(external, list(self.classes), self.config.data)
            self._arrays["external"] = load_arrays(external, external.subset("test"), self.spec(), index_of=index_of)
        return self._arrays["external"]
