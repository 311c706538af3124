"""The `pipeline` verb: does GAN augmentation help a scarce class? The experiment of issue #5.

One run folder (`--out`) holds the whole experiment. Two settings: `cut`, where every scarce
class's training images are drawn down to `--scarce-n` (reproducibly, from the train split
only), and `full`. Four conditions: `none`, `traditional` (the augmentation layers of
`retina_desktop.imaging.augmentation`), `gan` (scarce classes topped up with GAN images to the largest
class's count, or `--gan-target`) and `gan+traditional`; each trained once per seed with the
project's own classifier and training loop (`training.classifier.trainer`).

The protocol keeps the comparison honest. Each setting's GAN is trained once (seed 0) on that
setting's training images only, never on an image its classifiers do not see, and its images
are synthesised once and shared by every seed. Validation (early stopping) and test images are
real and untouched; the test split is used for the final figures only.

Layout of the run folder:

    pipeline.json                      the options (a re-run must match them) and the command
    splits.csv, cut.csv                the split used; the training images kept in `cut`
    gan/<setting>/                     generator.keras + .json, trained_on.csv, samples, checkpoint
    synthetic/<setting>/<class>/       the GAN images used (PNG + manifest.csv), and grid.png
    runs/<setting>/<condition>/seed<k>/result.json (+ history.json, test_probs.npz, weights)
    report/                            report.md and its figures (`experiments.report`)

The options and this layout are `experiments.runs`'s, shared with the report.

Work is resumable at run granularity: a run is finished when its result.json exists (written
last, atomically), and a re-run of the same command skips it. An interrupted classifier or GAN
also continues from its last epoch checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.inference.sidecars import CONDITIONAL
from training.datasets import drawn_order
from training.experiments.config import SELECTION, PipelineConfig, PipelineOptions
from training.experiments.report import write_report
from training.experiments.runs import (
    CONFIG_FILE,
    RESULT_FILE,
    RunKey,
    command_line,
    option_name,
    planned_runs,
    read_config,
    read_result,
)
from training.provenance import utc_now

logger = logging.getLogger(__name__)
GAN_SEED = 0  # one GAN per setting, whatever the classifier seeds
SYNTH_SEED = 0


# --- the data of each setting -------------------------------------------------------------


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
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.file}|{s.label}|{s.split}\n".encode())
    return digest.hexdigest()


def _write_samples(path: Path, samples) -> None:
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label"])
        writer.writerows([s.file, s.label] for s in samples)


def read_samples_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as handle:
        return [(row["file"], row["label"]) for row in csv.DictReader(handle)]


# --- the run folder ------------------------------------------------------------------------


def start_or_check(out: Path, config: PipelineConfig, dataset) -> dict:
    """Create pipeline.json, or refuse when the folder was started with other options."""
    from training.datasets import write_splits

    fingerprint = samples_fingerprint(dataset.samples)
    path = out / CONFIG_FILE
    if path.exists():
        saved, stored = read_config(out)
        differ = [
            f"{option_name(f)} {_show(getattr(saved, f))} (now {_show(getattr(config, f))})"
            for f in (field.name for field in dataclasses.fields(config))
            if f not in SELECTION and f != "data" and getattr(saved, f) != getattr(config, f)
        ]
        if stored.get("data_fingerprint") != fingerprint:
            differ.append(f"--data {saved.data} (its files, labels or splits differ from {config.data})")
        if differ:
            raise UserError(
                f'"{out}" was started with other options: {"; ".join(differ)}. Re-run with the same '
                f"options (only {', '.join(option_name(f) for f in SELECTION)} may change) or choose a new --out"
            )
        stored["config"] = dataclasses.replace(saved, **{f: getattr(config, f) for f in SELECTION}).to_dict()
        stored["command"] = command_line(config, out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_splits(dataset, out / "splits.csv")
        stored = {
            "config": config.to_dict(),
            "data_fingerprint": fingerprint,
            "command": command_line(config, out),
            "started_at": utc_now(),
        }
    with atomic_write(path) as handle:
        json.dump(stored, handle, indent=2)
    return stored


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


class Experiment:
    """The data, GANs and synthetic images of one run folder, each prepared once and cached."""

    def __init__(self, out: Path, config: PipelineConfig, dataset, log=logger.info):
        self.out, self.config, self.dataset, self.log = out, config, dataset, log
        missing = [c for c in config.scarce if c not in dataset.classes]
        if missing:
            raise UserError(
                f"--scarce {','.join(missing)}: not a class of {dataset.root} ({', '.join(dataset.classes)})")
        self.classes = dataset.classes
        self.gan_labels = list(self.classes) if config.gan_classes == "all" else [
            c for c in self.classes if c in config.scarce]
        self.cut = scarce_cut(dataset, config.scarce, config.scarce_n, config.cut_seed)
        self._arrays: dict = {}
        self._synthetic: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._features = None

    # Samples and arrays -----------------------------------------------------------------

    def train_samples(self, setting: str) -> list:
        return self.cut if setting == "cut" else self.dataset.subset("train")

    def spec(self, size: int | None = None):
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
        x, y = self.arrays("train")
        kept = {s.file for s in self.train_samples(setting)}
        mask = np.array([s.file in kept for s in self.dataset.subset("train")], dtype=bool)
        return x[mask], y[mask]

    def counts(self, samples) -> dict[str, int]:
        return {c: sum(s.label == c for s in samples) for c in self.classes}

    def synthetic_counts(self, setting: str) -> dict[str, int]:
        """GAN images per scarce class: enough to reach the target count."""
        real = self.counts(self.train_samples(setting))
        target = self.config.gan_target or max(real.values())
        return {c: max(0, target - real[c]) for c in self.config.scarce}

    # The GAN and its images -------------------------------------------------------------

    def gan_epochs(self, setting: str) -> int:
        """Epochs for this setting's GAN: as many optimiser steps as the cut setting's GAN.

        The full setting has more images (fundus4: 2,158 against the cut's 1,679), so the same
        epoch count would also be a longer training; equal steps leave the data as the only
        difference between the two settings' GANs.
        """
        cut, this = len(self.gan_samples("cut")), len(self.gan_samples(setting))
        return max(1, math.ceil(self.config.gan_epochs * cut / this))

    def gan_samples(self, setting: str) -> list:
        """The training images this setting's GAN learns from."""
        return [s for s in self.train_samples(setting) if s.label in self.gan_labels]

    def gan_folder(self, setting: str) -> Path:
        return self.out / "gan" / setting

    def ensure_generator(self, setting: str) -> Path:
        """Train this setting's GAN on this setting's training images, once; return its file."""
        folder = self.gan_folder(setting)
        path = folder / "generator.keras"
        if path.exists():
            return path
        if setting == "full" and self.config.gan_full:
            return self.adopt_generator(Path(self.config.gan_full), path)
        from training.datasets import display_aspect, load_arrays
        from training.gan.config import GanConfig
        from training.gan.trainer import train_gan

        samples = self.gan_samples(setting)
        _write_samples(folder / "trained_on.csv", samples)
        images, indices = load_arrays(self.dataset, samples, self.spec(self.config.gan_size))
        remap = np.array([self.gan_labels.index(c) if c in self.gan_labels else -1 for c in self.classes])
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
                epochs=self.gan_epochs(setting),
                loss=self.config.gan_loss,
                r1_gamma=self.config.gan_r1_gamma,
                seed=GAN_SEED,
                labels=tuple(self.gan_labels),
            )
            with atomic_write(started) as handle:
                json.dump(gan_config.to_dict(), handle, indent=2)
        counts = {c: int(np.sum(targets == i)) for i, c in enumerate(self.gan_labels)}
        self.log(f"GAN for the {setting} setting: {gan_config.epochs} epochs on its training images "
                 f"({', '.join(f'{k} {v}' for k, v in counts.items())})")
        gan, state = train_gan(gan_config, images, targets, folder, resume=True, verbose=2, log=self.log)
        per_epoch = state.seconds / max(1, state.epoch)
        sidecar = {
            "kind": CONDITIONAL,
            "description": "conditional generator (EMA weights)",
            "classes": self.gan_labels,
            "size": gan_config.size,
            "latent_dim": gan_config.latent_dim,
            "modality": self.config.modality,
            "fit": self.config.fit,
            "display_aspect": display_aspect(self.dataset, samples, self.config.fit),
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
        counts = {c: n for c, n in self.counts(self.gan_samples("full")).items() if c in self.gan_labels}
        problems = [
            f"{what} {theirs} (this experiment: {ours})"
            for what, theirs, ours in (
                ("classes", sidecar.get("classes"), self.gan_labels),
                ("training images", trained, counts),
                ("size", sidecar.get("size"), self.config.gan_size),
                ("fit", sidecar.get("fit", "crop"), self.config.fit),
            )
            if theirs != ours
        ]
        if problems:
            raise UserError(f"--gan-full {source}: not this experiment's full-setting GAN: {'; '.join(problems)}")
        _write_samples(path.parent / "trained_on.csv", self.gan_samples("full"))
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
        needed = {label: n * pool for label, n in self.synthetic_counts(setting).items()}
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
            paths[label] = synthesize(generator, self.gan_labels, label, n, folder / label, SYNTH_SEED)
        if not (folder / "grid.png").exists() and any(paths.values()):
            self._write_grid(setting, paths, folder / "grid.png")
        return paths

    def synthetic(self, setting: str, pool: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The GAN images at the classifier's size, fitted as real images are."""
        if (setting, pool) not in self._synthetic:
            from retina_desktop.imaging.decode import load_image
            from retina_desktop.imaging.preprocessing import fit_image

            paths = self.ensure_synthetic(setting, pool)
            spec = self.spec()
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
            real = [s for s in self.train_samples(setting) if s.label == label][:columns]
            real_images, _ = load_arrays(self.dataset, real, self.spec(size), progress=False)
            fake = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[label][:columns]]) if paths[
                label] else np.zeros((0, size, size, 3), np.uint8)
            for row in (real_images, fake):
                padded = np.zeros((columns, size, size, 3), np.uint8)
                padded[: len(row)] = row[:columns]
                rows.append(padded)
        grid = image_grid(np.concatenate(rows), len(rows))
        atomic_save(target, Image.fromarray(grid).save)

    # One classifier run ------------------------------------------------------------------

    def training_set(self, key: RunKey) -> tuple[np.ndarray, np.ndarray, dict]:
        x, y = self.real_train(key.setting)
        counts = {"real": self.counts(self.train_samples(key.setting)), "synthetic": dict.fromkeys(self.classes, 0)}
        if "gan" in key.condition:
            sx, sy = self.synthetic(key.setting)
            x, y = np.concatenate([x, sx]), np.concatenate([y, sy])
            for c in sy:
                counts["synthetic"][self.classes[c]] += 1
        return x, y, counts

    def classifier_config(self, key: RunKey):
        from training.classifier.config import ClassifierConfig

        c = self.config
        return ClassifierConfig(
            architecture="small",
            height=c.size,
            width=c.size,
            fit=c.fit,
            width_multiplier=c.width_multiplier,
            epochs=c.epochs,
            batch_size=c.batch_size,
            learning_rate=c.learning_rate,
            patience=c.patience,
            class_weighting=c.class_weighting,
            augment="traditional" in key.condition,
            seed=key.seed,
        )

    def run_one(self, key: RunKey, prefix: str = "") -> dict:
        """Train one (setting, condition, seed), judge it on the test split, write result.json."""
        from training.classifier.evaluate import compute_metrics

        folder = key.folder(self.out)
        started = time.perf_counter()
        train = self.train_frozen if self.config.classifier == "frozen-lite0" else self.train_small
        probs, counts, trained = train(key, folder, prefix)
        external = None
        if self.config.external:  # the classifiers return test and external rows together
            probs, external_probs = probs[: len(self.arrays("test")[1])], probs[len(self.arrays("test")[1]):]
            external = self.external_figures(external_probs)
        test_y = self.arrays("test")[1]
        metrics = compute_metrics(probs, test_y, self.classes, n_bootstrap=self.config.bootstrap, seed=0)
        sensitivity = {c: metrics["per_class"][c]["sensitivity"] for c in self.config.scarce}
        atomic_save(folder / "test_probs.npz", lambda p: np.savez(p, probs=probs, labels=test_y))
        with atomic_write(folder / "history.json") as handle:
            json.dump(trained.pop("history"), handle, indent=1)
        result = {
            "setting": key.setting,
            "condition": key.condition,
            "seed": key.seed,
            "scarce_sensitivity": float(np.mean(list(sensitivity.values()))),
            "sensitivity": sensitivity,
            "macro_f1": metrics["macro_f1"],
            "macro_auc": metrics["macro_auc"],
            "metrics": metrics,
            "per_source": self.per_source(probs, test_y),
            "external": external,
            "train_counts": counts,
            "val_n": int(len(self.arrays("val")[1])),
            "test_n": int(len(test_y)),
            "test_fingerprint": samples_fingerprint(self.dataset.subset("test")),
            **trained,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "finished_at": utc_now(),
        }
        with atomic_write(folder / RESULT_FILE) as handle:
            json.dump(result, handle, indent=1)
        return result

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

    def external_figures(self, probs: np.ndarray) -> dict:
        """On the other camera: each disease against the healthy class (AUC, sensitivity,
        healthy eyes called healthy) and each present class's sensitivity."""
        from training.classifier.evaluate import versus_healthy

        labels = self.external_arrays()[1]
        versus = versus_healthy(probs, labels, probs.argmax(axis=1), list(self.classes),
                                n_bootstrap=self.config.bootstrap)
        present = sorted(int(c) for c in np.unique(labels))
        return {
            "data": self.config.external,
            "n": int(len(labels)),
            "sensitivity": {self.classes[c]: float(np.mean(probs[labels == c].argmax(axis=1) == c)) for c in present},
            "versus_normal": versus,
        }

    def per_source(self, probs: np.ndarray, labels: np.ndarray) -> dict:
        """Scarce-class sensitivity and macro AUC on each source's test images (fundus4's
        `source` column); empty when the split has no sources."""
        from training.experiments.linear_probe import macro_auc

        sources = np.array([s.source for s in self.dataset.subset("test")])
        figures = {}
        for source in sorted(set(sources) - {""}):
            mask = sources == source
            entry = {"n": int(mask.sum()), "macro_auc": macro_auc(labels[mask], probs[mask])}
            for c in self.config.scarce:
                index = self.classes.index(c)
                of_class = mask & (labels == index)
                if of_class.any():
                    entry[f"{c}_sensitivity"] = float(np.mean(probs[of_class].argmax(axis=1) == index))
                    entry[f"{c}_n"] = int(of_class.sum())
            figures[source] = entry
        return figures

    def train_small(self, key: RunKey, folder: Path, prefix: str):
        """The `small` CNN trained end to end on images; (test probabilities, counts, facts)."""
        from retina_desktop.core.quiet import import_keras
        from retina_desktop.imaging.augmentation import default_config
        from training.classifier import trainer as classifier_module

        x, y, counts = self.training_set(key)
        self.log(f"{prefix}{key}: {len(y)} training images "
                 f"({sum(counts['real'].values())} real + {sum(counts['synthetic'].values())} GAN)")
        config = self.classifier_config(key)
        model, state = classifier_module.train_classifier(
            config, (x, y), self.arrays("val"), len(self.classes), folder, default_config(self.config.modality),
            resume=True, log=lambda message: self.log(f"{prefix}{message}"),
        )
        probs = model.predict(self.judged_images().astype("float32"), batch_size=64, verbose=0)
        # Only the best weights are kept: the trainer checkpoint is of no use once judged.
        best = folder / "checkpoint" / state.best
        if state.best and best.is_file():
            os.replace(best, folder / "best.weights.h5")
        shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        import_keras().backend.clear_session()  # 24+ models in one process: free the old graphs
        return probs, counts, {
            "classifier": config.to_dict(),
            "epochs_trained": state.epoch,
            "best_epoch": state.best_epoch,
            "best_val_macro_auc": state.best_score,
            "training_seconds": round(state.seconds, 1),
            "history": state.history,
        }

    # The frozen classifier -----------------------------------------------------------------

    def feature_store(self):
        if self._features is None:
            from training.experiments.features import FeatureStore

            self._features = FeatureStore(self.out / "features", self.config.size, self.config.modality,
                                          camera=self.config.modality == "fundus", log=self.log)
        return self._features

    def view_features(self, images: np.ndarray, views: int, desc: str) -> list[np.ndarray]:
        """Features of `images` as themselves (view 0) and as augmented views 1..views-1."""
        store = self.feature_store()
        return [store.features(images, view, desc=desc) for view in range(views)]

    def filtered_synthetic(self, key: RunKey, views: int) -> tuple[list[np.ndarray], np.ndarray]:
        """GAN images chosen by confidence: of twice the images needed per scarce class, the half
        that a head trained on this setting's real images (traditional views, this seed) gives
        the highest probability of the class they were drawn for."""
        from training.experiments.features import train_head

        pool_x, pool_y = self.synthetic(key.setting, pool=2)
        real_x, real_y = self.real_train(key.setting)
        val_x, val_y = self.arrays("val")
        store = self.feature_store()
        pool_features = store.features(pool_x, 0, desc=f"{key.setting} GAN pool")
        judge = train_head(self.view_features(real_x, 1 + self.config.views, f"{key.setting} train"), real_y,
                           (store.features(val_x, 0, desc="val"), val_y), pool_features, len(self.classes),
                           seed=key.seed)
        kept = []
        for label, n in self.synthetic_counts(key.setting).items():
            index = self.classes.index(label)
            rows = np.flatnonzero(pool_y == index)
            kept += rows[np.argsort(-judge.probs[rows, index], kind="stable")[:n]].tolist()
        kept = np.sort(np.array(kept, dtype=int))
        return self.view_features(pool_x[kept], views, f"{key.setting} filtered GAN"), pool_y[kept]

    def train_frozen(self, key: RunKey, folder: Path, prefix: str):
        """The frozen Lite0 features and a softmax head; (test probabilities, counts, facts)."""
        from training.experiments.features import HeadConfig, train_head

        views = 1 + (self.config.views if "traditional" in key.condition else 0)
        real_x, real_y = self.real_train(key.setting)
        train_views = self.view_features(real_x, views, f"{key.setting} train")
        y = real_y
        counts = {"real": self.counts(self.train_samples(key.setting)), "synthetic": dict.fromkeys(self.classes, 0)}
        if "gan" in key.condition:
            if key.condition.startswith("filtered-"):
                gan_views, sy = self.filtered_synthetic(key, views)
            else:
                sx, sy = self.synthetic(key.setting)
                gan_views = self.view_features(sx, views, f"{key.setting} GAN")
            train_views = [np.concatenate([r, g]) for r, g in zip(train_views, gan_views)]
            y = np.concatenate([real_y, sy])
            for c in sy:
                counts["synthetic"][self.classes[c]] += 1
        self.log(f"{prefix}{key}: {len(y)} training images "
                 f"({sum(counts['real'].values())} real + {sum(counts['synthetic'].values())} GAN), "
                 f"{views} view(s) each")
        store = self.feature_store()
        val_x, val_y = self.arrays("val")
        head_config = HeadConfig(class_weighting=self.config.class_weighting)
        started = time.perf_counter()
        head = train_head(train_views, y, (store.features(val_x, 0, desc="val"), val_y),
                          store.features(self.judged_images(), 0, desc="test"), len(self.classes), seed=key.seed,
                          config=head_config)
        folder.mkdir(parents=True, exist_ok=True)
        return head.probs, counts, {
            "classifier": {"kind": "frozen-lite0", "size": self.config.size, "fit": self.config.fit,
                           "views": views, "head": dataclasses.asdict(head_config), "seed": key.seed},
            "epochs_trained": head.epochs_trained,
            "best_epoch": head.best_epoch,
            "best_val_macro_auc": head.best_score,
            "training_seconds": round(time.perf_counter() - started, 1),
            "history": head.history,
        }


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def run_all(out: Path, config: PipelineConfig, dataset, log=logger.info) -> list[dict]:
    """Every planned run not yet finished, in order, with progress and an ETA."""
    experiment = Experiment(out, config, dataset, log)
    _write_samples(out / "cut.csv", experiment.cut)
    runs = planned_runs(config)
    done = [k for k in runs if (k.folder(out) / RESULT_FILE).exists()]
    log(f"{len(runs)} runs planned ({len(done)} already finished, skipped) in {out}")
    seconds: list[float] = []
    results = []
    for i, key in enumerate(runs, start=1):
        existing = read_result(out, key)
        if existing is not None:
            results.append(existing)
            continue
        if "gan" in key.condition:
            experiment.synthetic(key.setting)  # trains the setting's GAN first if need be
        started = time.perf_counter()
        result = experiment.run_one(key, prefix=f"[{i}/{len(runs)}] ")
        seconds.append(time.perf_counter() - started)
        left = [k for k in runs[i:] if not (k.folder(out) / RESULT_FILE).exists()]
        gans_left = {k.setting for k in left if "gan" in k.condition
                     and not (experiment.gan_folder(k.setting) / "generator.keras").exists()}
        log(f"[{i}/{len(runs)}] {key} done in {_duration(seconds[-1])}: scarce sensitivity "
            f"{result['scarce_sensitivity']:.3f}, macro F1 {result['macro_f1']:.3f}, macro AUC "
            f"{result['macro_auc']:.3f}; {len(left)} runs left, ETA {_duration(np.mean(seconds) * len(left))}"
            + (f" plus the GAN of {', '.join(sorted(gans_left))}" if gans_left else ""))
        results.append(result)
    return results


def run_pipeline(options: PipelineOptions) -> Path:
    """`python -m training pipeline ...`: run (or resume) the experiment, then write the report;
    with `--report-only` rebuild the report alone. Returns the report's file."""
    out = Path(options.out)
    docs = Path(options.docs) if options.docs else None
    copied = f" and copied it to {options.docs}" if options.docs else ""
    if options.report_only:
        config, stored = read_config(out)
        report = write_report(out, config, stored, docs=docs)
        logger.info(f"wrote {report}{copied}")
        return report
    config = options.config
    from training.datasets import load_dataset

    dataset = load_dataset(config.data)
    stored = start_or_check(out, config, dataset)
    if config.gan_size < config.size and any("gan" in c for c in config.conditions):
        logger.warning(f"warning: GAN images ({config.gan_size} px) are enlarged to the classifier's {config.size} px, "
                       "so they are blurrier than real ones: a difference the classifier can learn. "
                       "Prefer --gan-size >= --size.")
    logger.info(f"data: {dataset.root} ({len(dataset.samples)} images, classes {dataset.classes}); "
                f"scarce: {', '.join(config.scarce)}; on {platform.machine()} with {os.cpu_count()} CPUs")
    started = time.perf_counter()
    run_all(out, config, dataset)
    report = write_report(out, config, stored, docs=docs)
    logger.info(f"finished in {_duration(time.perf_counter() - started)}; wrote {report}{copied}")
    return report
