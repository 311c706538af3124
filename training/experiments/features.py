"""The pipeline's frozen classifier: ImageNet EfficientNet-Lite0 features and a softmax head.

Why this classifier: the shipped fundus recipe fine-tunes Lite0 for about an hour per run on a
2-core CPU, and the experiment needs 4+ conditions x 2 settings x 5+ seeds. A frozen backbone
turns each image (and each augmented view of it) into a feature vector once; a run is then a
head fitted in seconds. It is the "frozen Lite0 + logistic regression" row of
docs/fundus-models.md (test macro AUC 0.817 against 0.834 fine-tuned), with the shipped recipe's
framing (`fov`) and augmentation.

What varies with the seed: the head's initial weights, its dropout and its batch order, and, in
the traditional conditions, which of the precomputed augmented views each image contributes per
epoch. The views themselves (and the GAN images) are drawn once and shared by every seed, as
the GAN images of the `small` classifier's protocol are.

Features are kept per image in `FeatureStore` (keyed by the image's bytes and the view), so a
run folder computes each one once, across settings, conditions and re-runs.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save

logger = logging.getLogger(__name__)

BACKBONE = "efficientnet-lite0"


def image_key(image: np.ndarray, view: int) -> str:
    """The store's key for one uint8 image seen as augmented `view` (0: the image itself)."""
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + f":{view}"


def augmented_view(image: np.ndarray, key: str, modality: str, camera: bool) -> np.ndarray:
    """The augmented view named by `key`: the app's augmentations (and camera changes), drawn
    from a generator seeded by the key alone, so the same image and view always give the same
    picture, whichever run asks first."""
    from retina_desktop.imaging.augmentation import apply_transform, default_config, random_transform
    from retina_desktop.imaging.camera_augment import CameraAugmentConfig, camera_augment

    rng = np.random.default_rng(zlib.crc32(key.encode()))
    picture = apply_transform(image, random_transform(default_config(modality), rng))
    return camera_augment(picture, CameraAugmentConfig(), rng) if camera else picture


class FeatureStore:
    """Pooled backbone features per (image, view), computed on demand and kept in `folder`."""

    def __init__(self, folder: Path, size: int, modality: str, camera: bool, log=logger.info):
        self.folder, self.size, self.modality, self.camera, self.log = folder, size, modality, camera, log
        self.path = folder / f"{BACKBONE}-{size}px{'-camera' if camera else ''}.npz"
        self._model = None
        self._rows: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as stored:
                self._rows = dict(zip(stored["keys"].tolist(), stored["features"]))

    def _extractor(self):
        if self._model is None:
            from training.classifier.trainer import build_classifier
            from training.experiments.config import ProbeConfig
            from training.experiments.linear_probe import classifier_config

            self._model = build_classifier(classifier_config(ProbeConfig(size=self.size)), 2)
        return self._model

    def features(self, images: np.ndarray, view: int = 0, desc: str = "features") -> np.ndarray:
        """(n, 1280) float32 features of uint8 images (n, size, size, 3) seen as `view`."""
        from training.experiments.linear_probe import pooled_features

        keys = [image_key(image, view) for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self._rows]
        if missing:
            batch = images[missing]
            if view:
                batch = np.stack([augmented_view(images[i], keys[i], self.modality, self.camera) for i in missing])
            computed = pooled_features(self._extractor(), batch, desc=f"{desc} (view {view})").astype(np.float32)
            self._rows.update(zip((keys[i] for i in missing), computed))
            self._save()
        return np.stack([self._rows[key] for key in keys]) if keys else np.zeros((0, 1280), np.float32)

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._rows))
        rows = np.stack(list(self._rows.values()))
        atomic_save(self.path, lambda p: np.savez(p, keys=keys, features=rows))


@dataclass(frozen=True)
class HeadConfig:
    """The softmax head on standardised features."""

    epochs: int = 60
    patience: int = 8
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.2
    class_weighting: bool = True


@dataclass
class HeadResult:
    probs: np.ndarray  # test probabilities of the best epoch
    epochs_trained: int
    best_epoch: int
    best_score: float
    history: list[dict]


def train_head(train_views: list[np.ndarray], y: np.ndarray, val: tuple[np.ndarray, np.ndarray],
               test: np.ndarray, num_classes: int, seed: int, config: HeadConfig = HeadConfig()) -> HeadResult:
    """Fit a dropout + softmax layer on features; early-stop on val macro AUC.

    `train_views` holds one (n, d) array per view of the same n training images (one array
    without augmentation); each epoch takes every image once, in a view drawn for it afresh.
    """
    from retina_desktop.core.quiet import import_keras
    from training.evaluation.metrics import macro_auc

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    pooled = np.concatenate(train_views)
    mean, scale = pooled.mean(axis=0), pooled.std(axis=0)
    scale[scale < 1e-6] = 1.0
    views = np.stack([((v - mean) / scale).astype(np.float32) for v in train_views])
    x_val, x_test = ((val[0] - mean) / scale).astype(np.float32), ((test - mean) / scale).astype(np.float32)
    inputs = keras.Input((pooled.shape[1],))
    hidden = keras.layers.Dropout(config.dropout, seed=seed)(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
                  "sparse_categorical_crossentropy")
    counts = np.bincount(y, minlength=num_classes)
    weights = (len(y) / (num_classes * np.maximum(counts, 1))) if config.class_weighting else np.ones(num_classes)
    rng = np.random.default_rng(seed)
    best = (-np.inf, 0, None)
    history = []
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        pick = rng.integers(len(views), size=len(y))
        x_epoch = views[pick, np.arange(len(y))]
        model.fit(x_epoch, y, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0,
                  class_weight=dict(enumerate(weights.tolist())))
        score = macro_auc(val[1], model.predict(x_val, batch_size=1024, verbose=0))
        history.append({"epoch": epoch, "val_macro_auc": round(float(score), 5)})
        if score > best[0]:
            best = (score, epoch, [w.copy() for w in model.get_weights()])
        elif epoch - best[1] >= config.patience:
            break
    model.set_weights(best[2])
    probs = model.predict(x_test, batch_size=1024, verbose=0)
    return HeadResult(probs=probs, epochs_trained=epoch, best_epoch=best[1], best_score=float(best[0]),
                      history=history)
