"""The `gan-curve` verb: does GAN data help the shipped recipe when real images are few?

Issue #36's learning curve, for fundus photographs or OCT B-scans. For one scarce class at a
time, the class's real training images are cut to each point of the curve (for example 25, 50,
100 and all), the other classes kept whole, and four conditions are fitted at each point:

- `real`: the real images only;
- `traditional`: the class oversampled with augmented views of its real images (the app's
  augmentation for the modality, and camera changes for fundus photographs,
  `experiments.features.augmented_view`);
- `gan`: the class topped up with images of the point's own generator (`curve_generators`);
- `both`: half of each.

Every condition but `real` adds the same number of images (`--added`), so the comparison is of
kinds of image, not of counts. Each point draws a pool of twice that many views and GAN images
once; a seed is a draw of the added images from the pools.

The fast classifier is the shipped fundus recipe (`screening-probe`): frozen ImageNet
EfficientNet-Lite0 features at 224 px, a grade-weighted logistic regression, logits shifted to
the training prior. Its features are computed once per image, so a cell is a fit of seconds.
For fundus the head holds the shipped model's chosen settings and the confirmation searches
them on val for every fit. The shipped OCT model is instead a small CNN trained from scratch
(10 to 15 minutes a training here), so the OCT curve's cells use the same frozen features with
the head searched on val, and its most promising cell is confirmed by training the shipped OCT
model's own recipe on the cell's images (`experiments.curve_cnn`).

Layout of `--out` (every step resumes: a file that exists is not made again):

    curve.json                          the options; a re-run must match them
    gan/base/, gan/<class>/<n>/         the base GAN and each point's fine-tune (+ trained_on.csv)
    pools/<class>/<n>/gan/              the point's GAN images (PNG + manifest.csv)
    features/                           frozen features: the splits, each point's GAN and views
    cells/<class>/<n>/<condition>/seed<k>.npz   test probabilities of one fit
    cells-searched/..., cells-cnn/...   the confirmed cell: head searched on val, or the shipped CNN recipe
    report.md, summary.json, curves.png, samples.jpg   `experiments.curve_report` (or in --report)
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from training.datasets import drawn_order
from training.experiments.config import GanCurveOptions
from training.experiments.curve_generators import base_generator, point_generator
from training.experiments.curve_plan import (
    ALL,
    CONFIG_FILE,
    SHIPPED,
    CurveConfig,
    conditions_at,
    modality_config,
    parse_points,
    point_name,
)

logger = logging.getLogger(__name__)


class Curve:
    """The run folder of one learning curve: its generators, image pools, features and fits."""

    def __init__(self, out: Path, config: CurveConfig, log=logger.info):
        from training.datasets import load_dataset

        self.out, self.config, self.log = out, config, log
        self.dataset = load_dataset(config.data)
        self.classes = self.dataset.classes
        missing = [c for c in config.scarce if c not in self.classes]
        if missing:
            raise UserError(f"--scarce {','.join(missing)}: {config.data} has classes {', '.join(self.classes)}")
        self.train = self.dataset.subset("train")
        for label in config.scarce:
            have = sum(s.label == label for s in self.train)
            too_many = [n for n in config.points if n != ALL and n >= have]
            if too_many:
                raise UserError(f"--points {too_many[0]}: the train split has only {have} {label} images")
        self._sets = None
        self._network = None

    # Generators and pools ---------------------------------------------------------------------

    def smallest(self) -> int:
        sizes = [n for n in self.config.points if n != ALL]
        return min(sizes) if sizes else min(sum(s.label == c for s in self.train) for c in self.config.scarce)

    def real_images(self, label: str, n: int) -> list:
        order = drawn_order(self.train, label)
        return order if n == ALL else order[:n]

    def generator(self, label: str, n: int) -> Path:
        recipe, data = self.config.recipe, self.config.data
        base = base_generator(self.dataset, self.train, self.config.scarce, self.smallest(), recipe,
                              self.out / "gan" / "base", data, self.config.modality, log=self.log)
        return point_generator(self.dataset, self.train, label, len(self.real_images(label, n)), base, recipe,
                               self.out / "gan" / label / point_name(n), data, self.config.modality, log=self.log)

    def gan_pool(self, label: str, n: int, kind: str = "gan", spec=None) -> np.ndarray:
        """2 x `added` GAN images of the point (`kind` "gan": its own generator; "shipped-gan": the
        shipped one, at the point of every real image), fitted to `spec` (the frozen backbone's
        input) as real images are."""
        from retina_desktop.imaging.decode import load_image
        from retina_desktop.imaging.preprocessing import fit_image
        from training.gan.generator_file import load_generator
        from training.gan.synthesize import synthesize

        folder = self.out / "pools" / label / point_name(n) / kind
        wanted = 2 * self.config.added
        manifest = folder / "manifest.csv"
        if manifest.is_file() and len(manifest.read_text().splitlines()) == wanted + 1:
            paths = sorted(folder.glob("*.png"))
        else:
            generator_path = self.generator(label, n) if kind == "gan" else self.shipped_generator(label)
            generator, sidecar = load_generator(generator_path)
            self.log(f"{label} at {point_name(n)}: drawing {wanted} GAN images")
            paths = synthesize(generator, list(sidecar["classes"]), label, wanted, folder, seed=0,
                               generator_path=generator_path)
        return np.stack([fit_image(load_image(p).rgb, spec or self.spec()) for p in paths])

    def shipped_generator(self, label: str) -> Path:
        """The shipped generator, once its record shows it learnt `label` from as many images as
        this train split holds: then it saw no image that the point of every image holds back."""
        from retina_desktop.inference.generator_runtime import read_generator_info

        path = Path(self.config.shipped_generator)
        if not path.is_file():
            raise UserError(f"--shipped-generator {path}: no such file")
        info = read_generator_info(path)
        provenance = info.sidecar.get("provenance", {})
        parts = provenance.get("parts") or [{"classes": info.classes, "provenance": provenance}]
        counts = [part.get("provenance", {}).get("train_images", {}).get(label) for part in parts
                  if label in part.get("classes", [])]
        have = sum(s.label == label for s in self.train)
        if counts != [have]:
            raise UserError(f"--shipped-generator {path}: its record says it learnt {label} from {counts or 'no'} "
                            f"images, not from this train split's {have}")
        return path

    def spec(self):
        from retina_desktop.core.model_card import InputSpec

        return InputSpec(self.config.size, self.config.size, self.config.recipe.fit, "none")

    # Features ------------------------------------------------------------------------------

    def sets(self):
        """The splits' frozen features (shipped backbone, `pool`), computed once."""
        if self._sets is None:
            from training.experiments.screening_features import Backbone, pool_columns, pool_widths
            from training.experiments.screening_sets import feature_sets

            _, sets, network = feature_sets(Backbone(size=self.config.size, fit=self.config.recipe.fit),
                                                  self.config.data, [], self.out / "features", log=self.log)
            columns = pool_columns(pool_widths(network), ("pool",))
            for entry in sets.values():
                entry.features = entry.features[:, columns]
            self._sets, self._network, self._columns = sets, network, columns
        return self._sets

    def pool_features(self, label: str, n: int, kind: str) -> np.ndarray:
        """(2 x added, d) features of the point's GAN images or augmented views of its real ones."""
        path = self.out / "features" / f"{label}-{point_name(n)}-{kind}.npz"
        if path.is_file():
            with np.load(path) as stored:
                return stored["features"]
        self.sets()
        from training.experiments.screening_features import network_features

        images = self.augmented_pool(label, n) if kind == "views" else self.gan_pool(label, n, kind)
        features = network_features(self._network, images, desc=f"{label} {point_name(n)} {kind} features")
        features = features[:, self._columns]
        atomic_save(path, lambda tmp: np.savez(tmp, features=features))
        return features

    def augmented_pool(self, label: str, n: int, spec=None) -> np.ndarray:
        """2 x `added` augmented views at `spec` (the frozen backbone's input), the point's real
        images taken in turn, view k of image i drawn from a generator keyed by the image and k
        alone."""
        from training.datasets import load_arrays
        from training.experiments.features import augmented_view, image_key

        real = load_arrays(self.dataset, self.real_images(label, n), spec or self.spec(), progress=False)[0]
        wanted = 2 * self.config.added
        modality = self.config.modality
        views = []
        for k in range(wanted):
            image = real[k % len(real)]
            # Camera changes are of colour photographs; an OCT scanner's are not modelled.
            views.append(augmented_view(image, image_key(image, 1 + k // len(real)), modality,
                                        camera=modality == "fundus"))
        return np.stack(views)

    # Fits ----------------------------------------------------------------------------------

    def cell_path(self, label: str, n: int, condition: str, seed: int, protocol: str = "") -> Path:
        """Where one fit's test probabilities are kept: `protocol` "" for the curve's fast
        protocol, else the confirmation's ("searched", "cnn")."""
        return (self.out / (f"cells-{protocol}" if protocol else "cells") / label / point_name(n) / condition
                / f"seed{seed}.npz")

    def cell_train(self, label: str, n: int, condition: str, seed: int):
        """The training features of one fit: the train split with the class cut to the point's
        real images, then the condition's added images (ungraded)."""
        from training.experiments.screening_sets import FeatureSet

        train = self.sets()["train"]
        index = self.classes.index(label)
        kept = {s.file for s in self.real_images(label, n)}
        rows = np.array([lab != index or f in kept for lab, f in zip(train.labels, train.files, strict=True)])
        added = self.added_features(label, n, condition, seed)
        return FeatureSet(
            name=f"{label} {point_name(n)} {condition} seed {seed}",
            features=np.concatenate([train.features[rows], added]),
            labels=np.concatenate([train.labels[rows], np.full(len(added), index, train.labels.dtype)]),
            grades=np.concatenate([train.grades[rows], np.full(len(added), -1, train.grades.dtype)]),
            sources=np.concatenate([train.sources[rows], np.full(len(added), condition)]),
            files=[f for f, keep in zip(train.files, rows, strict=True) if keep] + [condition] * len(added),
        )

    def fit_cell(self, label: str, n: int, condition: str, seed: int, searched: bool = False) -> np.ndarray:
        """Test probabilities of one fit (cached). The head takes the config's settings, or,
        `searched` (or no C given), those screening-probe's search picks on val for this fit's
        training set."""
        path = self.cell_path(label, n, condition, seed, "searched" if searched else "")
        if path.is_file():
            with np.load(path) as stored:
                return stored["test_probs"]
        from training.evaluation.referral import DR_CLASS
        from training.experiments.screening_head import HeadChoice, fit_head

        sets = self.sets()
        train = self.cell_train(label, n, condition, seed)
        choice = HeadChoice(pools=("pool",), C=self.config.C, referable_weight=self.config.referable_weight,
                            mild_weight=self.config.mild_weight, prior="train")
        if searched or self.config.C is None:
            from training.experiments.config import ScreeningConfig
            from training.experiments.screening import search_head

            choice, _ = search_head({"train": train, "val": sets["val"]}, self.classes,
                                    ScreeningConfig(pool_sets=(("pool",),), seed=seed),
                                    {"pool": train.features.shape[1]}, log=lambda *a: None)
        dr = self.classes.index(DR_CLASS) if DR_CLASS in self.classes else None
        head = fit_head(train.features, train.labels, train.grades, dr, choice, seed=seed)
        probs = head.probabilities(sets["test"].features).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, lambda tmp: np.savez(tmp, test_probs=probs, train_rows=np.array(len(train.labels)),
                                               choice=np.array(json.dumps(choice.to_dict()))))
        return probs

    def confirm_cell(self, label: str, n: int, condition: str, seed: int) -> np.ndarray:
        """Test probabilities of one fit of the confirmation (`config.confirm`), cached."""
        if self.config.confirm == "cnn":
            from training.experiments.curve_cnn import train_cnn_cell

            return train_cnn_cell(self, label, n, condition, seed)
        return self.fit_cell(label, n, condition, seed, searched=True)

    def added_draw(self, label: str, n: int, condition: str, seed: int) -> list[tuple[str, np.ndarray]]:
        """The seed's draw of added images for a condition: (pool kind, rows of its pool), `added`
        images in all, no repeats; the same for every classifier that trains on the cell."""
        if condition == "real":
            return []
        count = self.config.added
        rng = np.random.default_rng([seed, zlib.crc32(f"{label}|{n}|{condition}".encode())])
        parts = {"traditional": [("views", count)], "gan": [("gan", count)], SHIPPED: [(SHIPPED, count)],
                 "both": [("gan", count // 2), ("views", count - count // 2)]}[condition]
        return [(kind, rng.choice(2 * count, k, replace=False)) for kind, k in parts]

    def added_features(self, label: str, n: int, condition: str, seed: int) -> np.ndarray:
        chosen = [self.pool_features(label, n, kind)[rows] for kind, rows in self.added_draw(label, n, condition, seed)]
        return np.concatenate(chosen) if chosen else np.zeros((0, self.sets()["train"].features.shape[1]), np.float32)


def start_or_check(out: Path, config: CurveConfig) -> None:
    """Write the run's options, or refuse a re-run whose options differ (its cells would mix)."""
    path = out / CONFIG_FILE
    wanted = json.loads(json.dumps(config.to_dict()))
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
        except ValueError as err:
            raise UserError(f"{path}: not a learning-curve record ({err})") from err
        if stored.get("config") != wanted:
            changed = sorted(k for k in wanted if stored.get("config", {}).get(k) != wanted[k])
            raise UserError(f"{out} holds a learning curve with other options ({', '.join(changed)}); "
                            "give another --out or the same options")
        return
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump({"config": wanted}, handle, indent=2)


CONFIRM_SEEDS = 3  # the "confirm the most promising cell with the full recipe and 3 seeds"


class Clock:
    """The curve's working time over every call that worked on it, kept in curve.json after each
    finished step: an interrupted call loses only the time of the step it was in (a GAN it was
    training resumes from its last epoch)."""

    def __init__(self, path: Path):
        self.path = path
        stored = json.loads(path.read_text())
        self.before, self.calls = float(stored.get("seconds", 0.0)), int(stored.get("calls", 0)) + 1
        self.started = time.perf_counter()
        self.save()

    def this_call(self) -> float:
        return time.perf_counter() - self.started

    def total(self) -> float:
        return self.before + self.this_call()

    def save(self) -> None:
        stored = json.loads(self.path.read_text())
        stored.update(seconds=round(self.total(), 1), calls=self.calls)
        with atomic_write(self.path) as handle:
            json.dump(stored, handle, indent=2)


def run_curve(out: Path, config: CurveConfig, report_dir: Path | None = None, log=logger.info) -> dict:
    """Every cell of the curve, then its report; returns the report's summary."""
    from tqdm import tqdm

    from training.experiments.curve_report import confirmation, most_promising, summarise, write_report

    start_or_check(out, config)
    clock = Clock(out / CONFIG_FILE)
    curve = Curve(out, config, log=log)
    curve.sets()
    clock.save()
    for label in config.scarce:
        for n in config.points:
            for kind in ("gan", "views") + ((SHIPPED,) if SHIPPED in conditions_at(config, n) else ()):
                curve.pool_features(label, n, kind)
                clock.save()
    cells = [(label, n, condition, seed) for label in config.scarce for n in config.points
             for condition in conditions_at(config, n) for seed in range(1 if condition == "real" else config.seeds)]
    probs = {}
    for cell in tqdm(cells, desc="fits", unit="fit"):
        probs[cell] = curve.fit_cell(*cell)
        clock.save()
    summary = summarise(curve, probs)
    label, point, promising = most_promising(summary)
    n = next(n for n in config.points if point_name(n) == point)
    confirming = {}
    for condition in ("traditional", promising):
        for seed in range(CONFIRM_SEEDS):
            confirming[(condition, seed)] = curve.confirm_cell(label, n, condition, seed)
            clock.save()
    confirmed = confirmation(curve, label, point, promising, confirming, CONFIRM_SEEDS)
    write_report(curve, summary, confirmed, report_dir or out, clock, log=log)
    clock.save()
    log(f"learning curve: {len(cells)} fits; {clock.total() / 60:.1f} min in all over {clock.calls} call(s), "
        f"{clock.this_call() / 60:.1f} min in this one")
    return summary


def curve_config(options: GanCurveOptions) -> CurveConfig:
    """The curve the options describe, the modality's defaults filling what they leave out."""
    scarce = tuple(s.strip() for s in options.scarce.split(",") if s.strip()) if options.scarce else None
    config = modality_config(str(options.data), options.modality, scarce=scarce,
                             points=parse_points(options.points) if options.points else None, seeds=options.seeds,
                             added=options.added, base_epochs=options.base_epochs,
                             finetune_steps=options.finetune_steps, shipped_generator=options.shipped_generator)
    if config.seeds < 1 or config.added < 2:
        raise UserError("--seeds must be 1 or more and --added 2 or more")
    return config


def run_gan_curve(options: GanCurveOptions) -> dict:
    """`gan-curve`: make (or resume) the curve in `options.out` and write its report; returns the summary."""
    return run_curve(Path(options.out), curve_config(options), Path(options.report) if options.report else None)

