"""The `screening-probe` verb: the screening fundus model, a head on frozen pooled features chosen
on validation, written as a bundle the app loads, with a referral threshold.

Steps: frozen features of the train, val and test splits (cached, `screening_features.py`); a
staged search on the val split (each pool set over the C grid with plain weights; then grade
weightings at the best pool set and C: `screening_head.py`); the chosen head folded into one
Dense layer on the feature network, so the app runs one Keras model (0..255 image in,
probabilities out, `last_conv` for heatmaps); then `evaluate_bundle` on the test split, which
fits the temperature on val and chooses the referral threshold on val p(DR) for referable-DR
sensitivity (`training/evaluation/referral.py`). External sets are never read here: judge them
afterwards with `evaluate --store-external`.

Outputs in `--out`: `keras_model.h5`, `labels.txt`, `keras_model.json`, `config.json`,
`splits.csv`, `search.json` (val figures of every head tried) and `evaluation/`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from training.experiments.config import ScreeningConfig, ScreeningProbeOptions
from training.experiments.screening_head import HeadChoice

logger = logging.getLogger(__name__)

MATCH_ATOL = 1e-4


def search_head(sets, classes: list[str], config: ScreeningConfig, widths: dict[str, int],
                log=logger.info) -> tuple[HeadChoice, list[dict]]:
    """The head with the best val selection score, by the staged search; every trial recorded.
    `widths`: each pool's width in the cached features (`pool_widths`)."""
    from training.evaluation.referral import DR_CLASS
    from training.experiments.screening_features import pool_columns
    from training.experiments.screening_head import fit_head, selection_score

    train, val = sets["train"], sets["val"]
    dr = classes.index(DR_CLASS) if DR_CLASS in classes else None
    trials: list[dict] = []

    def trial(choice: HeadChoice) -> float:
        columns = pool_columns(widths, choice.pools)
        started = time.perf_counter()
        head = fit_head(train.features[:, columns], train.labels, train.grades, dr, choice, seed=config.seed)
        figures = selection_score(head.probabilities(val.features[:, columns]), val.labels, val.grades, classes)
        trials.append({**choice.to_dict(), **{k: round(v, 4) for k, v in figures.items()},
                       "seconds": round(time.perf_counter() - started, 1)})
        log(f"  {'+'.join(choice.pools):36s} C={choice.C:<7g} grade weights {choice.referable_weight:g}/"
            f"{choice.mild_weight:g}: val macro AUC {figures['macro_auc']:.4f}, referable-DR AUC "
            f"{figures.get('referable_auc', float('nan')):.4f}, score {figures['score']:.4f}")
        return figures["score"]

    best, best_score = None, -np.inf
    for pools in config.pool_sets:
        for c in config.c_grid:
            choice = HeadChoice(pools=tuple(pools), C=c)
            score = trial(choice)
            if score > best_score:
                best, best_score = choice, score
    # Grade weights weigh DR eyes only: without a DR class every weighting is the same fit.
    for referable, mild in config.grade_weightings if dr is not None else ():
        if (referable, mild) == (1.0, 1.0):
            continue
        choice = dataclasses.replace(best, referable_weight=referable, mild_weight=mild)
        score = trial(choice)
        if score > best_score:
            best, best_score = choice, score
    return best, trials


def held_out_camera_figures(sets, classes: list[str], choice: HeadChoice, widths: dict[str, int],
                            seed: int = 0) -> dict:
    """The chosen head refitted without each graded source in turn and judged on that source's
    train and val eyes: referable-DR and DR-vs-normal AUC on a camera it never saw, from the
    training data alone. The worst source is what the backbones are compared by (a lever that
    helps one camera can hurt another; the external sets stay unread)."""
    from training.evaluation.metrics import rank_auc
    from training.evaluation.referral import DR_CLASS, HEALTHY_CLASS, REFERABLE_GRADE, referable_rows
    from training.experiments.screening_features import pool_columns
    from training.experiments.screening_head import fit_head

    columns = pool_columns(widths, choice.pools)
    rows = [sets["train"], sets["val"]]
    x = np.concatenate([r.features[:, columns] for r in rows])
    labels, grades = np.concatenate([r.labels for r in rows]), np.concatenate([r.grades for r in rows])
    sources = np.concatenate([r.sources for r in rows])
    dr, healthy = classes.index(DR_CLASS), classes.index(HEALTHY_CLASS)
    table = {}
    for source in sorted(set(sources.tolist())):
        held = sources == source
        graded = referable_rows(labels[held], grades[held], classes)
        referable = grades[held][graded] >= REFERABLE_GRADE
        if referable.sum() < 10 or (~referable).sum() < 10 or len(set(labels[~held].tolist())) < len(classes):
            continue  # too few graded eyes to judge, or the rest lacks a class
        head = fit_head(x[~held], labels[~held], grades[~held], dr, choice, seed=seed)
        p = head.probabilities(x[held])
        pair = np.isin(labels[held], [dr, healthy])
        table[source] = {
            "n": int(held.sum()),
            "referable_auc": round(rank_auc(referable, p[graded, dr]), 4),
            "dr_auc": round(rank_auc(labels[held][pair] == dr, p[pair, dr]), 4),
        }
    worst = min((entry["referable_auc"] for entry in table.values()), default=None)
    return {"by_source": table, "worst_referable_auc": worst}


def head_model(network, head, classes: list[str], pools: tuple[str, ...]):
    """The app's model: the feature network's chosen pools into a Dense softmax that equals the
    fitted regression (standardisation folded into its weights)."""
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    chosen = [network.get_layer(name).output for name in pools]
    features = chosen[0] if len(chosen) == 1 else keras.layers.Concatenate(name="features")(chosen)
    dense = keras.layers.Dense(len(classes), activation="softmax", name="predictions")
    model = keras.Model(network.inputs[0], dense(features), name="screening_classifier")
    dense.set_weights(head.dense_weights())
    return model


def run_screening(data: str | Path, out: str | Path, config: ScreeningConfig, *, cache: Path | None = None,
                  name: str | None = None, version: str = "1", heatmaps: int = 0, n_bootstrap: int = 1000,
                  log=logger.info) -> Path:
    """Search the head on val, write the bundle and its test figures; returns the model path."""
    from retina_desktop.core.atomic import atomic_write
    from retina_desktop.core.paths import user_cache_dir
    from training.classifier.classify import write_bundle
    from training.datasets import load_arrays, load_dataset, write_splits
    from training.evaluation.evaluate import evaluate_bundle
    from training.evaluation.referral import DR_CLASS
    from training.experiments.screening_features import pool_columns, pool_widths
    from training.experiments.screening_head import fit_head
    from training.experiments.screening_sets import feature_sets, with_synthetic_features

    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = cache or user_cache_dir() / "screening-features"
    classes, sets, network = feature_sets(config.backbone(), data, [], cache, log=log)
    if config.synthetic:
        sets["train"] = with_synthetic_features(sets["train"], network, config.synthetic, classes,
                                                config.input_spec(), log=log)
    widths = pool_widths(network)
    feature_seconds = time.perf_counter() - started
    log(f"features: {network.output.shape[-1]} per image ({widths}) in {feature_seconds:.0f} s")
    fit_started = time.perf_counter()
    choice, trials = search_head(sets, classes, config, widths, log=log)
    dr = classes.index(DR_CLASS) if DR_CLASS in classes else None
    columns = pool_columns(widths, choice.pools)
    train = sets["train"]
    head = fit_head(train.features[:, columns], train.labels, train.grades, dr, choice, seed=config.seed)
    fit_seconds = time.perf_counter() - fit_started
    log(f"chosen on val: {choice}")
    held_out = held_out_camera_figures(sets, classes, choice, widths, seed=config.seed)
    for source, entry in held_out["by_source"].items():
        log(f"  without {source}, judged on its {entry['n']} train+val eyes: referable-DR AUC "
            f"{entry['referable_auc']:.4f}, DR vs normal AUC {entry['dr_auc']:.4f}")

    model = head_model(network, head, classes, choice.pools)  # on the network the features came from
    dataset = load_dataset(data)
    spec = config.input_spec()
    val_images = load_arrays(dataset, dataset.subset("val")[:8], spec, progress=False)[0]
    ours = np.asarray(model.predict_on_batch(val_images.astype("float32")), dtype=np.float64)
    theirs = head.probabilities(sets["val"].features[:8, columns])
    worst = float(np.max(np.abs(ours - theirs)))
    if worst > MATCH_ATOL:
        raise RuntimeError(f"the screening network differs from its fitted head by {worst:.2e}")

    write_splits(dataset, out / "splits.csv")
    with atomic_write(out / "config.json") as handle:
        json.dump({**config.to_dict(), "chosen": choice.to_dict()}, handle, indent=2)
    with atomic_write(out / "search.json") as handle:
        json.dump({"selection": "mean of val macro AUC and val referable-DR AUC", "trials": trials,
                   "chosen": choice.to_dict(), "held_out_cameras": held_out}, handle, indent=2)
    model_path, _ = write_bundle(
        out, model, classes, spec, modality="fundus",
        name=name or f"fundus screening model (frozen {config.architecture} features, {config.size} px)",
        version=version, data=data, config={**config.to_dict(), "chosen": choice.to_dict()},
        method=("multinomial logistic regression on frozen ImageNet EfficientNet-Lite features pooled "
                f"{'+'.join(choice.pools)}, grade-weighted, chosen on val"),
        feature_seconds=round(feature_seconds, 1),
        training_seconds=round(fit_seconds, 1),
        held_out_cameras=held_out,
    )
    evaluate_bundle(model_path, dataset, split="test", out_dir=out / "evaluation", store=True, heatmaps=heatmaps,
                    n_bootstrap=n_bootstrap)
    log(f"wrote {model_path}, labels.txt, keras_model.json and evaluation/ to {out} "
        f"in {(time.perf_counter() - started) / 60:.1f} min (network = head within {worst:.1e})")
    return model_path


def run_screening_probe(options: ScreeningProbeOptions) -> Path:
    """`screening-probe`: search the head `options` describe and write its bundle; returns the model path."""
    return run_screening(options.data, options.out, options.config,
                         cache=Path(options.cache) if options.cache else None, name=options.name,
                         version=options.model_version, heatmaps=options.heatmaps, n_bootstrap=options.bootstrap)
