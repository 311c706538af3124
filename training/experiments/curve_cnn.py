"""The learning curve's confirmation with a shipped model's own recipe: the OCT curve's.

The shipped OCT model is a small CNN trained from scratch (`classify`), 10 to 15 minutes a
training on this CPU, too slow for the curve's hundred fits; the curve's cells use frozen
features instead (`experiments.gan_curve`). The issue asks the most promising cell to be
confirmed with the full recipe, so here that recipe is trained on the cell's images: the
hyperparameters are read from the shipped model's record (`provenance.config` of its JSON
sidecar), and only the seed and the training images change. The training images are the
cell's: the train split with the class cut to the point's real images, plus the same draw of
GAN images or augmented views as the fast protocol's fit of that seed (`Curve.added_draw`),
fitted to the CNN's input.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.errors import UserError


def shipped_recipe(model: str | Path):
    """The ClassifierConfig the shipped model at `model` was trained with, from its record."""
    from training.classifier.config import ClassifierConfig

    sidecar = Path(model).with_suffix(".json")
    try:
        stored = json.loads(sidecar.read_text())["provenance"]["config"]
        return ClassifierConfig.from_dict(stored)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{sidecar}: no training recipe to rerun ({err})") from err


def cell_images(curve, label: str, n: int, condition: str, seed: int, spec) -> tuple[np.ndarray, np.ndarray]:
    """(images, class indices) the cell trains on, at `spec`."""
    from training.datasets import load_arrays

    index = curve.classes.index(label)
    kept = {s.file for s in curve.real_images(label, n)}
    samples = [s for s in curve.train if s.label != label or s.file in kept]
    images, labels = load_arrays(curve.dataset, samples, spec, progress=False)
    added = []
    for kind, rows in curve.added_draw(label, n, condition, seed):
        pool = curve.augmented_pool(label, n, spec) if kind == "views" else curve.gan_pool(label, n, kind, spec)
        added.append(pool[rows])
    if added:
        extra = np.concatenate(added)
        images = np.concatenate([images, extra])
        labels = np.concatenate([labels, np.full(len(extra), index, labels.dtype)])
    return images, labels


def train_cnn_cell(curve, label: str, n: int, condition: str, seed: int, log=None) -> np.ndarray:
    """Test probabilities of the shipped recipe trained on one cell (seed `seed`), cached. The
    training checkpoints every epoch in the cell's folder, so an interrupted one resumes."""
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.imaging.augmentation import default_config
    from training.classifier.trainer import train_classifier
    from training.datasets import load_arrays
    from training.experiments.curve_plan import point_name

    log = log or curve.log
    path = curve.cell_path(label, n, condition, seed, "cnn")
    if path.is_file():
        with np.load(path) as stored:
            return stored["test_probs"]
    config = dataclasses.replace(shipped_recipe(curve.config.confirm_model), seed=seed)
    spec = config.input_spec()
    train = cell_images(curve, label, n, condition, seed, spec)
    val = load_arrays(curve.dataset, curve.dataset.subset("val"), spec, progress=False)
    folder = path.with_suffix("")
    log(f"{label} at {point_name(n)}, {condition}, seed {seed}: the shipped CNN recipe on {len(train[1])} images "
        f"({config.epochs} epochs, {config.height} x {config.width})")
    model, state = train_classifier(config, train, val, len(curve.classes), folder,
                                    default_config(curve.config.modality), resume=True,
                                    log=lambda message: log(f"  {message}"), data=str(curve.dataset.root.resolve()))
    test = load_arrays(curve.dataset, curve.dataset.subset("test"), spec, progress=False)[0]
    probs = model.predict(test.astype("float32"), batch_size=64, verbose=0).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: np.savez(tmp, test_probs=probs, train_rows=np.array(len(train[1])),
                                           best_epoch=np.array(state.best_epoch),
                                           seconds=np.array(round(state.seconds, 1))))
    shutil.rmtree(folder, ignore_errors=True)  # the checkpoints are of no use once judged
    import_keras().backend.clear_session()  # six models in one process: free the old graphs
    return probs
