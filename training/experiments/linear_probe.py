"""The `linear-probe` verb: the frozen-feature floor (issue #18) as a model bundle the app loads.

Owns one baseline: an ImageNet backbone left exactly as ImageNet trained it, its globally pooled
features, and a multinomial logistic regression (scikit-learn, balanced class weights, C chosen
on the val split by macro AUC) fitted on them. The regression's coefficients become the
classifier's `predictions` layer, so the result is the same network `build_classifier` makes
(raw 0..255 images in, probabilities out, `last_conv` for heatmaps) and `evaluate` judges it
like every trained model. Outputs in `--out`: `keras_model.h5`, `labels.txt`,
`keras_model.json`, `config.json` (this run's `ProbeConfig`, with the C chosen), `splits.csv`,
`probe.json` (val macro AUC of every C tried) and `evaluation/` (the test split).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from training.evaluation.metrics import macro_auc
from training.experiments.config import LinearProbeOptions, ProbeConfig

logger = logging.getLogger(__name__)

POOL_LAYER = "pool"
PREDICTIONS_LAYER = "predictions"
# The saved network's softmax must reproduce predict_proba: float32 logits against float64
# ones differ by about 1e-6, a wrong fold of the scaling by far more.
MATCH_ATOL = 1e-4


def classifier_config(config: ProbeConfig):
    """The `build_classifier` config of the network the probe sits on."""
    from training.classifier.config import ClassifierConfig

    return ClassifierConfig(
        architecture=config.architecture, weights=config.weights, height=config.size, width=config.size,
        fit=config.fit, seed=config.seed, local_contrast=config.local_contrast,
    )


def pooled_features(model, images: np.ndarray, batch_size: int = 64, *, desc: str = "features") -> np.ndarray:
    """The `pool` layer's output for uint8 (n, h, w, 3) images, in batches with a progress bar."""
    from tqdm import tqdm

    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    extractor = keras.Model(model.inputs, model.get_layer(POOL_LAYER).output, name="pooled_features")
    rows = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        batch = images[start : start + batch_size].astype("float32")
        rows.append(np.asarray(extractor.predict_on_batch(batch), dtype=np.float64))
    return np.concatenate(rows) if rows else np.zeros((0, extractor.output.shape[-1]))


def fit_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: ProbeConfig,
    log=logger.info,
):
    """Fit the logistic regression on train features; returns (model, scaler mean, scale, C, val AUC by C).

    Features are standardised (train mean and deviation) so that one C grid suits every
    backbone and lbfgs converges; `dense_weights` folds the scaling back into the layer.
    """
    from sklearn.linear_model import LogisticRegression

    x_train, y_train = train
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a feature constant on train carries nothing; keep it finite

    def fitted(c: float):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=config.max_iter, random_state=config.seed)
        return model.fit((x_train - mean) / scale, y_train)

    scores: dict[str, float] = {}
    grid = (config.C,) if config.C is not None else config.c_grid
    best, best_c, best_score = None, grid[0], -np.inf
    for c in grid:
        model = fitted(c)
        score = macro_auc(val[1], model.predict_proba((val[0] - mean) / scale)) if len(val[1]) else float("nan")
        scores[str(c)] = round(score, 4)
        log(f"  C={c:<8g} val macro AUC {score:.4f}")
        if best is None or score > best_score:
            best, best_c, best_score = model, c, score
    return best, mean, scale, best_c, scores


def dense_weights(regression, mean: np.ndarray, scale: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """[kernel (features, classes), bias] whose softmax equals `regression.predict_proba` on
    (x - mean) / scale, for raw features x."""
    coef = np.asarray(regression.coef_, dtype=np.float64)
    intercept = np.asarray(regression.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:
        # Two classes: scikit-learn keeps one logit z for class 1, and softmax([0, z]) equals
        # its [1 - sigmoid(z), sigmoid(z)].
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    full_coef = np.zeros((num_classes, coef.shape[1]))
    full_bias = np.full(num_classes, -1e4)  # a class absent from train is never predicted
    full_coef[regression.classes_] = coef
    full_bias[regression.classes_] = intercept
    kernel = (full_coef / scale).T
    bias = full_bias - (full_coef / scale) @ mean
    return [kernel.astype("float32"), bias.astype("float32")]


def check_probabilities(model, images: np.ndarray, regression, features: np.ndarray, mean, scale) -> float:
    """Largest difference between the saved network's probabilities and predict_proba on the
    same images; RuntimeError when they disagree (a wrong fold would ship a different model)."""
    ours = np.asarray(model.predict_on_batch(images.astype("float32")), dtype=np.float64)
    theirs = np.zeros_like(ours)
    theirs[:, regression.classes_] = regression.predict_proba((features - mean) / scale)
    worst = float(np.max(np.abs(ours - theirs)))
    if worst > MATCH_ATOL:
        raise RuntimeError(f"the probe's network differs from the logistic regression by {worst:.2e}")
    return worst


def run_probe(data: str | Path, out: str | Path, config: ProbeConfig, *, modality: str = "fundus",
              name: str | None = None, version: str = "1", heatmaps: int = 0, n_bootstrap: int = 1000,
              log=logger.info) -> Path:
    """Build the frozen network, fit the probe, write the bundle and its test figures; returns the model path."""
    from retina_desktop.core.atomic import atomic_write
    from retina_desktop.core.quiet import import_keras
    from training.classifier.classify import write_bundle
    from training.classifier.trainer import build_classifier
    from training.datasets import load_arrays, load_dataset, write_splits

    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(data, seed=config.seed)
    classes = dataset.classes
    spec = config.input_spec()
    log(f"data: {dataset.root} ({len(dataset.samples)} images, classes {classes})")
    train = load_arrays(dataset, dataset.subset("train"), spec)
    val = load_arrays(dataset, dataset.subset("val"), spec)
    write_splits(dataset, out / "splits.csv")

    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    model = build_classifier(classifier_config(config), len(classes))
    log(f"{config.architecture} features at {config.size} px ({config.fit}), {len(train[1])} train + "
        f"{len(val[1])} val images ...")
    feature_started = time.perf_counter()
    x_train = pooled_features(model, train[0], config.batch_size, desc="train features")
    x_val = pooled_features(model, val[0], config.batch_size, desc="val features")
    feature_seconds = time.perf_counter() - feature_started
    log(f"features: {x_train.shape[1]} per image in {feature_seconds:.0f} s")

    fit_started = time.perf_counter()
    regression, mean, scale, chosen_c, scores = fit_probe((x_train, train[1]), (x_val, val[1]), config, log=log)
    fit_seconds = time.perf_counter() - fit_started
    model.get_layer(PREDICTIONS_LAYER).set_weights(dense_weights(regression, mean, scale, len(classes)))
    rows = np.arange(min(8, len(val[1])))
    worst = check_probabilities(model, val[0][rows], regression, x_val[rows], mean, scale)
    log(f"C = {chosen_c:g} (val macro AUC {scores[str(chosen_c)]:.4f}); network = predict_proba within {worst:.1e}")

    chosen = dataclasses.replace(config, C=chosen_c)
    with atomic_write(out / "config.json") as handle:
        json.dump(chosen.to_dict(), handle, indent=2)
    with atomic_write(out / "probe.json") as handle:
        json.dump({"val_macro_auc_by_C": scores, "C": chosen_c, "features": int(x_train.shape[1]),
                   "n_iter": [int(n) for n in np.ravel(regression.n_iter_)]}, handle, indent=2)
    model_path, _ = write_bundle(
        out, model, classes, spec, modality=modality,
        name=name or f"{modality} linear probe on frozen {config.architecture} ({', '.join(classes)})",
        version=version, data=data, config=chosen.to_dict(),
        method="logistic regression on frozen ImageNet pooled features (linear probe)",
        val_macro_auc=scores[str(chosen_c)],
        feature_seconds=round(feature_seconds, 1),
        training_seconds=round(fit_seconds, 1),
    )

    from training.evaluation.evaluate import evaluate_bundle

    evaluate_bundle(model_path, dataset, split="test", out_dir=out / "evaluation", store=True, heatmaps=heatmaps,
                    n_bootstrap=n_bootstrap)
    log(f"wrote {model_path}, labels.txt, keras_model.json and evaluation/ to {out} "
        f"in {(time.perf_counter() - started) / 60:.1f} min")
    return model_path


def run_linear_probe(options: LinearProbeOptions) -> Path:
    """`linear-probe`: fit the probe `options` describe and write its bundle; returns the model path."""
    return run_probe(options.data, options.out, options.config, modality=options.modality, name=options.name,
                     heatmaps=options.heatmaps, n_bootstrap=options.bootstrap)
