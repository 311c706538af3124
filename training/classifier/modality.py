"""The `modality` verb: a small classifier that tells fundus photographs, OCT B-scans and
anything else apart, shipped as models/modality/ for the image checks.

Positives are the real images of our data sets (their patient-grouped splits kept), optionally
with extra fundus photographs from other cameras (DRIVE, CHASE); negatives ("other") come from
`training.classifier.negatives`, split by source file so that the test figures are on unseen sources, and
from `training.classifier.wrong_inputs` (`--wrong-inputs`: fluorescein angiograms, OCT angiography, and
red-free and greyscale copies of the fundus set's own photographs), each on its fixed side.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.model_card import InputSpec, ModelMetadata
from retina_desktop.imaging.augmentation import AugmentConfig
from retina_desktop.imaging.decode import list_images, load_image
from retina_desktop.imaging.preprocessing import fit_image
from retina_desktop.inference.model_files import write_labels, write_sidecar
from training.classifier.config import ModalityOptions
from training.classifier.negatives import negatives, random_crops
from training.classifier.trainer import train_classifier
from training.classifier.wrong_inputs import wrong_inputs
from training.datasets import load_arrays, load_dataset

logger = logging.getLogger(__name__)
CLASSES = ["fundus", "oct", "other"]


def _real(folder: str, split: str, spec: InputSpec) -> np.ndarray:
    dataset = load_dataset(folder)
    images, _ = load_arrays(dataset, dataset.subset(split), spec)
    return images


def _variant_arrays(folder: str, split: str, spec: InputSpec, count: int, seed: int) -> np.ndarray:
    """Fundus photographs of one split as other cameras frame and expose them (a 3:2 sensor's
    clipped field, a wide black frame, over- and under-exposure, a warm balance): `count`
    photographs drawn per split, each in every variant. Taught as fundus, so that the check
    learns the eye rather than our cameras' framing."""
    from training.classifier.camera_variants import VARIANTS

    dataset = load_dataset(folder)
    samples = dataset.subset(split)
    rng = np.random.default_rng([seed, 11])
    picked = [samples[i] for i in sorted(rng.choice(len(samples), min(count, len(samples)), replace=False))]
    framings = [make for name, make in VARIANTS.items() if name not in ("large", "small")]  # same once fitted
    images = []
    for sample in picked:
        original = load_image(dataset.root / sample.file).rgb
        images += [fit_image(make(original), spec) for make in framings]
    return np.stack(images)


def _negative_arrays(side: str, spec: InputSpec, crops: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    images, names = [], []
    for negative in negatives(side, seed=seed):
        views = random_crops(negative.image, crops, rng) if crops else [negative.image]
        images += [fit_image(view, spec) for view in views]
        names += [negative.name] * len(views)
    return np.stack(images), names


# Fundus photographs per generated kind (red-free, green red-free, greyscale) on each side.
WRONG_PER_KIND = {"train": 300, "val": 40, "test": 100}


def _wrong_arrays(options: ModalityOptions, split: str, spec: InputSpec) -> np.ndarray:
    """Wrong inputs of one side; on the train side each real one also as 3 random crops."""
    rng = np.random.default_rng([options.seed, 7])
    images = []
    for item in wrong_inputs(options.wrong_inputs, split, fundus=options.fundus, per_kind=WRONG_PER_KIND[split]):
        views = [item.image]
        if split == "train" and item.kind not in ("red-free", "red-free-green", "greyscale-fundus"):
            views += random_crops(item.image, 3, rng)
        images += [fit_image(view, spec) for view in views]
    return np.stack(images)


def _wrong_test_figures(model, options: ModalityOptions, spec: InputSpec) -> dict[str, dict]:
    """Per wrong-input kind, how many of its test part the model calls "other"."""
    kinds: dict[str, list[np.ndarray]] = {}
    for item in wrong_inputs(options.wrong_inputs, "test", fundus=options.fundus, per_kind=WRONG_PER_KIND["test"]):
        kinds.setdefault(item.kind, []).append(fit_image(item.image, spec))
    out = {}
    for kind, images in kinds.items():
        probs = model.predict(np.stack(images).astype("float32"), batch_size=64, verbose=0)
        out[kind] = {"n": len(images), "other": round(float((probs.argmax(1) == 2).mean()), 4)}
    return out


def build_sets(options: ModalityOptions, spec: InputSpec) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(images, labels) of each split: fundus 0, OCT 1, other 2."""
    sets = {}
    for split in ("train", "val", "test"):
        fundus = _real(options.fundus, split, spec)
        oct_ = _real(options.oct, split, spec)
        parts = [fundus, oct_]
        labels = [np.zeros(len(fundus)), np.ones(len(oct_))]
        if options.camera_variants and split != "test":
            variants = _variant_arrays(options.fundus, split, spec, options.camera_variants, seed=options.seed)
            parts.append(variants)
            labels.append(np.zeros(len(variants)))
        if split == "train":
            for folder in options.extra_fundus:
                extra = np.stack([fit_image(load_image(p).rgb, spec) for p in list_images(folder)])
                parts.append(extra)
                labels.append(np.zeros(len(extra)))
        # Each negative source on its own side: val sources choose the epoch, test ones are
        # only measured.
        crops = 8 if split == "train" else (1 if split == "val" else 0)
        neg, _ = _negative_arrays(split, spec, crops, seed=options.seed + (split == "val"))
        parts.append(neg)
        labels.append(np.full(len(neg), 2))
        if options.wrong_inputs:
            wrong = _wrong_arrays(options, split, spec)
            parts.append(wrong)
            labels.append(np.full(len(wrong), 2))
        sets[split] = (np.concatenate(parts), np.concatenate(labels).astype(np.int32))
        counts = np.bincount(sets[split][1], minlength=3)
        logger.info(f"{split}: " + ", ".join(f"{c} {n}" for c, n in zip(CLASSES, counts)))
    return sets


def run_modality(options: ModalityOptions) -> dict:
    """`modality`: train the check on `options`' data sets and write its bundle; returns its test report."""
    config = options.classifier_config()
    spec = config.input_spec()
    sets = build_sets(options, spec)
    out = Path(options.out)
    augment = AugmentConfig(
        flip_horizontal=True, rotation_degrees=10, zoom=0.1, brightness=0.2, contrast=0.2, gamma=0.2
    )
    model, state = train_classifier(config, sets["train"], sets["val"], 3, out, augment, resume=options.resume)
    x_test, y_test = sets["test"]
    probs = model.predict(x_test.astype("float32"), batch_size=64, verbose=0)
    report = {
        "test_accuracy_by_class": {
            c: round(float((probs[y_test == i].argmax(1) == i).mean()), 4) for i, c in enumerate(CLASSES)
        },
        "test_counts": {c: int((y_test == i).sum()) for i, c in enumerate(CLASSES)},
        "training_seconds": round(state.seconds, 1),
    }
    if options.wrong_inputs:
        report["wrong_inputs_test_called_other"] = _wrong_test_figures(model, options, spec)
    if options.camera_variants:
        variants = _variant_arrays(options.fundus, "test", spec, 200, seed=options.seed)
        called = model.predict(variants.astype("float32"), batch_size=64, verbose=0).argmax(1) == 0
        report["camera_variants_test_called_fundus"] = {"n": int(len(called)), "fundus": round(float(called.mean()), 4)}
    atomic_save(out / "keras_model.h5", model.save)
    write_labels(out / "labels.txt", CLASSES)
    write_sidecar(
        out / "keras_model.json",
        ModelMetadata(
            classes=CLASSES, input=spec, modality="any", name="Image modality check (fundus / OCT / other)",
            version="1",
            provenance={
                "command": "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
                "data": [
                    options.fundus,
                    options.oct,
                    *options.extra_fundus,
                    *([options.wrong_inputs] if options.wrong_inputs else []),
                ],
                "negatives": "training/classifier/negatives.py (packaged sample images and generated ones)"
                + (
                    ", training/classifier/wrong_inputs.py (wrong inputs, red-free and greyscale fundus)"
                    if options.wrong_inputs
                    else ""
                ),
                "config": config.to_dict(),
                "training_seconds": round(state.seconds, 1),
            },
            metrics=report,
        ),
    )
    with atomic_write(out / "history.json") as handle:
        json.dump(state.history, handle, indent=1)
    logger.info(json.dumps(report, indent=1))
    return report
