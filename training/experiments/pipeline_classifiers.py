"""The pipeline's classifier stage: one (setting, condition, seed) run, trained on that
setting's real images (plus its GAN images in the GAN conditions) with the `small` CNN or the
frozen Lite0 features and a softmax head, judged on the test split and written to result.json.

Resumable at run granularity: result.json is written last, atomically; an interrupted `small`
classifier continues from its epoch checkpoint, and the frozen features are cached on disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from training.evaluation.metrics import compute_metrics
from training.experiments.pipeline_data import ExperimentData, samples_fingerprint
from training.experiments.pipeline_gan import GanStage
from training.experiments.pipeline_judging import Judging
from training.experiments.runs import RESULT_FILE, RunKey
from training.provenance import utc_now


class ClassifierRuns:
    """Trains and judges the classifier of one run key; the frozen features are shared by all."""

    def __init__(self, out: Path, data: ExperimentData, gans: GanStage, judging: Judging, log):
        self.out, self.data, self.gans, self.judging, self.log = out, data, gans, judging, log
        self.config, self.classes = data.config, data.classes
        self._features = None

    def _counts(self, setting: str) -> dict[str, dict[str, int]]:
        """Training images per class: this setting's real ones; synthetic ones are added as used."""
        return {"real": self.data.counts(self.data.train_samples(setting)), "synthetic": dict.fromkeys(self.classes, 0)}

    def training_set(self, key: RunKey) -> tuple[np.ndarray, np.ndarray, dict]:
        """The `small` CNN's training images of a run: real, plus GAN ones in a GAN condition; with counts."""
        x, y = self.data.real_train(key.setting)
        counts = self._counts(key.setting)
        if "gan" in key.condition:
            sx, sy = self.gans.synthetic(key.setting)
            x, y = np.concatenate([x, sx]), np.concatenate([y, sy])
            for c in sy:
                counts["synthetic"][self.classes[c]] += 1
        return x, y, counts

    def classifier_config(self, key: RunKey):
        """The `small` CNN's hyperparameters for a run: the pipeline's, augmentation by condition, seed by key."""
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
        folder = key.folder(self.out)
        started = time.perf_counter()
        train = self.train_frozen if self.config.classifier == "frozen-lite0" else self.train_small
        probs, counts, trained = train(key, folder, prefix)
        external = None
        if self.config.external:  # the classifiers return test and external rows together
            probs, external_probs = probs[: len(self.data.arrays("test")[1])], probs[len(self.data.arrays("test")[1]):]
            external = self.judging.external_figures(external_probs)
        test_y = self.data.arrays("test")[1]
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
            "per_source": self.judging.per_source(probs, test_y),
            "external": external,
            "train_counts": counts,
            "val_n": int(len(self.data.arrays("val")[1])),
            "test_n": int(len(test_y)),
            "test_fingerprint": samples_fingerprint(self.data.dataset.subset("test")),
            **trained,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "finished_at": utc_now(),
        }
        with atomic_write(folder / RESULT_FILE) as handle:
            json.dump(result, handle, indent=1)
        return result

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
            config, (x, y), self.data.arrays("val"), len(self.classes), folder, default_config(self.config.modality),
            resume=True, log=lambda message: self.log(f"{prefix}{message}"),
        )
        probs = model.predict(self.data.judged_images().astype("float32"), batch_size=64, verbose=0)
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

    def feature_store(self):
        """The frozen Lite0 features of this run folder (`features/`), opened once."""
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

        pool_x, pool_y = self.gans.synthetic(key.setting, pool=2)
        real_x, real_y = self.data.real_train(key.setting)
        val_x, val_y = self.data.arrays("val")
        store = self.feature_store()
        pool_features = store.features(pool_x, 0, desc=f"{key.setting} GAN pool")
        judge = train_head(self.view_features(real_x, 1 + self.config.views, f"{key.setting} train"), real_y,
                           (store.features(val_x, 0, desc="val"), val_y), pool_features, len(self.classes),
                           seed=key.seed)
        kept = []
        for label, n in self.data.synthetic_counts(key.setting).items():
            index = self.classes.index(label)
            rows = np.flatnonzero(pool_y == index)
            kept += rows[np.argsort(-judge.probs[rows, index], kind="stable")[:n]].tolist()
        kept = np.sort(np.array(kept, dtype=int))
        return self.view_features(pool_x[kept], views, f"{key.setting} filtered GAN"), pool_y[kept]

    def train_frozen(self, key: RunKey, folder: Path, prefix: str):
        """The frozen Lite0 features and a softmax head; (test probabilities, counts, facts)."""
        from training.experiments.features import HeadConfig, train_head

        views = 1 + (self.config.views if "traditional" in key.condition else 0)
        real_x, real_y = self.data.real_train(key.setting)
        train_views = self.view_features(real_x, views, f"{key.setting} train")
        y = real_y
        counts = self._counts(key.setting)
        if "gan" in key.condition:
            if key.condition.startswith("filtered-"):
                gan_views, sy = self.filtered_synthetic(key, views)
            else:
                sx, sy = self.gans.synthetic(key.setting)
                gan_views = self.view_features(sx, views, f"{key.setting} GAN")
            train_views = [np.concatenate([r, g]) for r, g in zip(train_views, gan_views)]
            y = np.concatenate([real_y, sy])
            for c in sy:
                counts["synthetic"][self.classes[c]] += 1
        self.log(f"{prefix}{key}: {len(y)} training images "
                 f"({sum(counts['real'].values())} real + {sum(counts['synthetic'].values())} GAN), "
                 f"{views} view(s) each")
        store = self.feature_store()
        val_x, val_y = self.data.arrays("val")
        head_config = HeadConfig(class_weighting=self.config.class_weighting)
        started = time.perf_counter()
        head = train_head(train_views, y, (store.features(val_x, 0, desc="val"), val_y),
                          store.features(self.data.judged_images(), 0, desc="test"), len(self.classes), seed=key.seed,
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
