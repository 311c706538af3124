"""The pipeline's GAN stage: each setting's generator, trained once on that setting's training
images only (or adopted when trained elsewhere on exactly those), and its synthetic images per
scarce class, made once and shared by every classifier seed.

Resumable: a generator is finished when generator.keras exists (its sidecar is written first),
and a class's images when their manifest lists as many as needed; an interrupted GAN continues
from its checkpoint with the architecture it started with.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.inference.sidecars import CONDITIONAL
from training.experiments.pipeline_data import ExperimentData, read_samples_csv, write_samples
from training.provenance import utc_now

GAN_SEED = 0  # one GAN per setting, whatever the classifier seeds
SYNTH_SEED = 0


class GanStage:
    """The generators of one run folder (`gan/<setting>/`) and their images (`synthetic/<setting>/`)."""

    def __init__(self, out: Path, data: ExperimentData, log):
        self.out, self.data, self.config, self.classes, self.log = out, data, data.config, data.classes, log
        self.labels = list(self.classes) if self.config.gan_classes == "all" else [
            c for c in self.classes if c in self.config.scarce]
        self._synthetic: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def epochs(self, setting: str) -> int:
        """Epochs for this setting's GAN: as many optimiser steps as the cut setting's GAN.

        The full setting has more images (fundus4: 2,158 against the cut's 1,679), so the same
        epoch count would also be a longer training; equal steps leave the data as the only
        difference between the two settings' GANs.
        """
        cut, this = len(self.samples("cut")), len(self.samples(setting))
        return max(1, math.ceil(self.config.gan_epochs * cut / this))

    def samples(self, setting: str) -> list:
        """The training images this setting's GAN learns from."""
        return [s for s in self.data.train_samples(setting) if s.label in self.labels]

    def folder(self, setting: str) -> Path:
        """Where this setting's generator, checkpoint and samples live."""
        return self.out / "gan" / setting

    def ensure_generator(self, setting: str) -> Path:
        """Train this setting's GAN on this setting's training images, once; return its file."""
        folder = self.folder(setting)
        path = folder / "generator.keras"
        if path.exists():
            return path
        if setting == "full" and self.config.gan_full:
            return self.adopt_generator(Path(self.config.gan_full), path)
        from training.datasets import display_aspect, load_arrays
        from training.gan.config import GanConfig
        from training.gan.trainer import train_gan

        samples = self.samples(setting)
        write_samples(folder / "trained_on.csv", samples)
        images, indices = load_arrays(self.data.dataset, samples, self.data.spec(self.config.gan_size))
        remap = np.array([self.labels.index(c) if c in self.labels else -1 for c in self.classes])
        targets = remap[indices].astype(np.int32)
        started = folder / "config.json"
        if started.exists():  # an interrupted GAN resumes with the architecture it started with
            gan_config = GanConfig.from_dict(json.loads(started.read_text()))
        else:
            gan_config = GanConfig(
                size=self.config.gan_size,
                latent_dim=self.config.gan_latent_dim,
                width=self.config.gan_width,
                batch_size=self.config.gan_batch_size,
                epochs=self.epochs(setting),
                loss=self.config.gan_loss,
                r1_gamma=self.config.gan_r1_gamma,
                seed=GAN_SEED,
                labels=tuple(self.labels),
            )
            with atomic_write(started) as handle:
                json.dump(gan_config.to_dict(), handle, indent=2)
        counts = {c: int(np.sum(targets == i)) for i, c in enumerate(self.labels)}
        self.log(f"GAN for the {setting} setting: {gan_config.epochs} epochs on its training images "
                 f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
        gan, state = train_gan(gan_config, images, targets, folder, resume=True, verbose=2, log=self.log)
        per_epoch = state.seconds / max(1, state.epoch)
        sidecar = {
            "kind": CONDITIONAL,
            "description": "conditional generator (EMA weights)",
            "classes": self.labels,
            "size": gan_config.size,
            "latent_dim": gan_config.latent_dim,
            "modality": self.config.modality,
            "fit": self.config.fit,
            "display_aspect": display_aspect(self.data.dataset, samples, self.config.fit),
            "note": "synthetic images: model output for augmentation, not patient data",
            "provenance": {
                "pipeline_setting": setting,
                "data": self.config.data,
                "train_images": counts,
                "trained_on": "trained_on.csv (this setting's training images only)",
                "config": gan_config.to_dict(),
                "epochs_trained": state.epoch,
                "seconds_per_epoch": round(per_epoch, 2),
                "training_seconds": round(state.seconds, 1),
                "trained_at": utc_now(),
            },
        }
        # The sidecar first: generator.keras existing means both are complete.
        with atomic_write(path.with_suffix(".json")) as handle:
            json.dump(sidecar, handle, indent=2)
        atomic_save(path, gan.ema_generator.save)
        self.log(f"GAN for the {setting} setting: {state.seconds / 60:.1f} min ({per_epoch:.1f} s/epoch)")
        return path

    def adopt_generator(self, source: Path, path: Path) -> Path:
        """Copy a generator trained elsewhere on this setting's exact training images into `path`.

        Refused unless its sidecar says it learnt the same classes from the same number of
        training images per class, at the GAN size and with the fit this experiment uses.
        """
        sidecar_file = source.with_suffix(".json")
        if not source.is_file() or not sidecar_file.is_file():
            raise UserError(f"--gan-full {source}: needs the generator and its sidecar {sidecar_file.name}")
        sidecar = json.loads(sidecar_file.read_text())
        trained = sidecar.get("provenance", {}).get("train_images", {})
        counts = {c: n for c, n in self.data.counts(self.samples("full")).items() if c in self.labels}
        problems = [
            f"{what} {theirs} (this experiment: {ours})"
            for what, theirs, ours in (
                ("classes", sidecar.get("classes"), self.labels),
                ("training images", trained, counts),
                ("size", sidecar.get("size"), self.config.gan_size),
                ("fit", sidecar.get("fit", "crop"), self.config.fit),
            )
            if theirs != ours
        ]
        if problems:
            raise UserError(f"--gan-full {source}: not this experiment's full-setting GAN: {'; '.join(problems)}")
        write_samples(path.parent / "trained_on.csv", self.samples("full"))
        adopted = dict(sidecar, provenance=dict(sidecar.get("provenance", {}), pipeline_setting="full",
                                                adopted_from=str(source)))
        with atomic_write(path.with_suffix(".json")) as handle:
            json.dump(adopted, handle, indent=2)
        atomic_save(path, lambda p: shutil.copyfile(source, p))
        self.log(f"GAN for the full setting: {source} (trained on the same images)")
        return path

    def ensure_synthetic(self, setting: str, pool: int = 1) -> dict[str, list[Path]]:
        """This setting's GAN images per scarce class (PNG + manifest.csv), made once.

        `pool` > 1 makes that many times the images needed, for the confidence filter to choose
        from; the first images of a pool are those of the plain GAN conditions (same latents)."""
        folder = self.out / ("synthetic" if pool == 1 else f"synthetic-x{pool}") / setting
        needed = {label: n * pool for label, n in self.data.synthetic_counts(setting).items()}
        paths: dict[str, list[Path]] = {}
        generator = None
        for label, n in needed.items():
            manifest = folder / label / "manifest.csv"
            if n == 0:
                paths[label] = []
                continue
            if manifest.is_file():
                rows = read_samples_csv(manifest)
                if len(rows) == n:
                    paths[label] = [folder / label / name for name, _ in rows]
                    continue
            if generator is None:
                from training.gan.generator_file import load_generator

                generator, _ = load_generator(self.ensure_generator(setting))
            from training.gan.synthesize import synthesize

            self.log(f"synthesising {n} {label} images for the {setting} setting")
            paths[label] = synthesize(generator, self.labels, label, n, folder / label, SYNTH_SEED)
        if not (folder / "grid.png").exists() and any(paths.values()):
            self._write_grid(setting, paths, folder / "grid.png")
        return paths

    def synthetic(self, setting: str, pool: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The GAN images at the classifier's size, fitted as real images are."""
        if (setting, pool) not in self._synthetic:
            from retina_desktop.imaging.decode import load_image
            from retina_desktop.imaging.preprocessing import fit_image

            paths = self.ensure_synthetic(setting, pool)
            spec = self.data.spec()
            images, labels = [], []
            for label, files in paths.items():
                images += [fit_image(load_image(p).rgb, spec) for p in files]
                labels += [self.classes.index(label)] * len(files)
            shape = (0, spec.height, spec.width, 3)
            self._synthetic[(setting, pool)] = (
                np.stack(images) if images else np.zeros(shape, np.uint8),
                np.array(labels, dtype=np.int32),
            )
        return self._synthetic[(setting, pool)]

    def _write_grid(self, setting: str, paths: dict[str, list[Path]], target: Path, columns: int = 8) -> None:
        """Rows per scarce class: its real training images (of this setting), then GAN images."""
        from PIL import Image

        from training.datasets import load_arrays
        from training.gan.trainer import image_grid

        size = self.config.gan_size
        rows = []
        for label in self.config.scarce:
            real = [s for s in self.data.train_samples(setting) if s.label == label][:columns]
            real_images, _ = load_arrays(self.data.dataset, real, self.data.spec(size), progress=False)
            fake = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[label][:columns]]) if paths[
                label] else np.zeros((0, size, size, 3), np.uint8)
            for row in (real_images, fake):
                padded = np.zeros((columns, size, size, 3), np.uint8)
                padded[: len(row)] = row[:columns]
                rows.append(padded)
        grid = image_grid(np.concatenate(rows), len(rows))
        atomic_save(target, Image.fromarray(grid).save)
