"""The `familiarity` verb: fit a model's unfamiliar-image flag and measure whether it is worth
showing.

The record (`retina_desktop.inference.familiarity`) is fitted on the features of the model's TRAINING
split, as the app computes them (the service's preprocessing and model, so nothing is written
twice); its threshold is a percentile of the VALIDATION split's distances. Then it is judged by
what matters, on images it never saw:

- the share of the model's own test split flagged (in distribution: should be at most 5%);
- on external data sets (`--external`, another camera; never fitted nor tuned on), the error
  rate of flagged images against unflagged ones, where an error is the app's reported answer
  differing from the reference label: a flag that does not predict error is noise;
- on folders of wrong inputs (`--wrong`, images neither model should read), the share flagged.

Writes `<model stem>.familiarity.npz` beside the model and the "familiarity" entry of its
sidecar (threshold, figures, the command), read from disk and updated in place so other keys
stay as they are. `classify` calls `fit_for_model` at the end of training.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from retina_desktop.core.errors import UserError
from training.classifier.config import PERCENTILE, FamiliarityOptions

logger = logging.getLogger(__name__)


def run_familiarity(options: FamiliarityOptions) -> dict[str, Any]:
    """`familiarity`: fit, measure and store the flag of `options.model`; returns its sidecar entry."""
    if not 50 <= options.percentile < 100:
        raise UserError(f"--percentile must be from 50 to below 100, not {options.percentile:g}")
    from training.datasets import load_dataset

    dataset = load_dataset(options.data)
    command = "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    entry = fit_for_model(
        Path(options.model),
        dataset,
        externals=[Path(d) for d in options.external],
        wrongs=[Path(d) for d in options.wrong],
        percentile=options.percentile,
        components=options.components,
        neighbours=options.neighbours,
        command=command,
        trust=options.trust_model,
    )
    logger.info(format_summary(entry))
    return entry


def fit_for_model(
    model_path: Path,
    dataset,
    *,
    externals: list[Path] = (),
    wrongs: list[Path] = (),
    percentile: float = PERCENTILE,
    components: int = 128,
    neighbours: int = 10,
    command: str = "",
    trust: bool = False,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Fit, threshold, measure and store the flag of `model_path`; returns the sidecar entry.

    `train` and `val` are the splits' fitted images and labels when the caller has them in
    memory already (`classify`); else they are loaded (from the decoded-array cache).
    """
    from retina_desktop.inference.familiarity import Familiarity, choose_threshold, path_for
    from retina_desktop.inference.litert_backend import file_sha256
    from retina_desktop.inference.model_files import sidecar_path_for, update_sidecar
    from training.evaluation.predictions import load_split, open_classifier

    say = (lambda *a: None) if quiet else logger.info
    classifier = open_classifier(model_path, dataset, trust)
    metadata = classifier.bundle().metadata
    train = train if train is not None else load_split(classifier, dataset, "train")
    val = val if val is not None else load_split(classifier, dataset, "val")
    if not len(val[0]):
        raise UserError(f'"{dataset.root}" has no validation images to choose the threshold on')
    say(f"features of {len(train[0])} training images ...")
    _, train_features = _features(classifier, train[0])
    record = Familiarity.fit(
        train_features, components=components, neighbours=neighbours, model_sha256=file_sha256(model_path)
    )
    _, val_features = _features(classifier, val[0])
    val_distances = record.distance(val_features)
    record = record.with_threshold(choose_threshold(val_distances, percentile))
    say(f"threshold {record.threshold:.4f} ({percentile:g}th percentile of {len(val_distances)} validation distances)")

    figures: dict[str, Any] = {"val": _flagged_share(record, val_distances)}
    test = load_split(classifier, dataset, "test")
    if len(test[0]):
        figures["test"] = labelled_figures(classifier, record, *test, metadata)
    for folder in externals:
        from training.datasets import load_dataset

        external = load_dataset(folder)
        images, labels = _all_images(classifier, external, index_labels=True)
        figures.setdefault("external", {})[Path(folder).resolve().name] = labelled_figures(
            classifier, record, images, labels, metadata
        )
    for folder in wrongs:
        figures.setdefault("wrong_inputs", {})[Path(folder).resolve().name] = wrong_figures(classifier, record, folder)

    path = path_for(model_path)
    record.save(path)
    entry = {
        "file": path.name,
        "threshold": round(record.threshold, 6),
        "percentile": percentile,
        "chosen_on": f"val split, {percentile:g}th percentile of {len(val_distances)} distances",
        "method": (
            f"Distance to the {_ordinal(record.neighbours)} nearest of the {len(train[0])} training images, in the "
            f"model's own feature space: the {record.dimension} pooled '{_layer_name(classifier)}' features scaled "
            f"to unit length, on their first {record.projection.shape[1]} principal components"
        ),
        "figures": figures,
        "command": command or "?",
    }
    update_sidecar(sidecar_path_for(model_path), "familiarity", entry)
    say(f"wrote {path} and the familiarity entry of {sidecar_path_for(model_path)}")
    return entry


def _features(classifier, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs, features = classifier.predict_features(images)
    if features is None:
        raise UserError(f'"{classifier.model_path}" has no convolutional feature maps to measure familiarity on')
    return probs, features


def _layer_name(classifier) -> str:
    return classifier.bundle().runtime.feature_layer or "?"


def _flagged_share(record, distances: np.ndarray) -> dict[str, Any]:
    flagged = record.is_unfamiliar(distances)
    return {
        "n": int(len(distances)),
        "flagged": int(flagged.sum()),
        "flagged_share": round(float(flagged.mean()), 4) if len(distances) else None,
        "median_distance": round(float(np.median(distances)), 4) if len(distances) else None,
    }


def labelled_figures(classifier, record, images: np.ndarray, labels: np.ndarray, metadata) -> dict[str, Any]:
    """Flagged share and the error rate of flagged against unflagged images, where an error is
    the app's answer (stored temperature and operating point) differing from the label."""
    probs, features = _features(classifier, images)
    distances = record.distance(features)
    reported = np.array([metadata.label_for([float(p) for p in row]) for row in probs])
    wrong = reported != np.asarray(labels)
    flagged = record.is_unfamiliar(distances)
    out = _flagged_share(record, distances)

    def rate(mask: np.ndarray) -> float | None:
        return round(float(wrong[mask].mean()), 4) if mask.any() else None

    out.update({
        "errors_flagged": int(wrong[flagged].sum()),
        "errors_unflagged": int(wrong[~flagged].sum()),
        "error_rate_flagged": rate(flagged),
        "error_rate_unflagged": rate(~flagged),
        "error_rate_all": rate(np.ones_like(flagged)),
    })
    if wrong.any() and not wrong.all():
        # How well the distance itself ranks the errors, whatever the threshold (Mann-Whitney).
        from training.evaluation.metrics import rank_auc

        out["error_auc"] = round(rank_auc(wrong, distances), 4)
    flagged_rate, unflagged_rate = out["error_rate_flagged"], out["error_rate_unflagged"]
    if flagged_rate is not None and unflagged_rate:
        out["error_ratio"] = round(flagged_rate / unflagged_rate, 2)
    return out


def wrong_figures(classifier, record, folder: str | Path) -> dict[str, Any]:
    """The share of a folder of wrong inputs flagged, overall and per sub-folder (images
    directly in the folder count under ".")."""
    from retina_desktop.imaging.decode import list_images, load_image
    from retina_desktop.imaging.preprocessing import fit_image

    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise UserError(f'"{folder}" holds no images')
    spec = classifier.bundle().metadata.input
    images = np.stack([fit_image(load_image(f).rgb, spec) for f in files])
    kinds = np.array([Path(f).relative_to(folder).parts[0] if len(Path(f).relative_to(folder).parts) > 1 else "."
                      for f in files])
    _, features = _features(classifier, images)
    flagged = record.is_unfamiliar(record.distance(features))
    out = {"n": int(len(flagged)), "flagged": int(flagged.sum()), "flagged_share": round(float(flagged.mean()), 4)}
    out["by_folder"] = {
        name: {"n": int((kinds == name).sum()), "flagged_share": round(float(flagged[kinds == name].mean()), 4)}
        for name in sorted(set(kinds))
    }
    # The flag never trains on wrong inputs, so every image is unseen; the modality check's fixed
    # test part (training/classifier/wrong_inputs.py) is reported too, to compare the two on the same images.
    try:
        from training.classifier.wrong_inputs import side_of
    except ImportError:
        return out
    test = np.array([side_of(Path(f).name) == "test" for f in files])
    out["test_part"] = {
        name: {"n": int((test & (kinds == name)).sum()),
               "flagged_share": round(float(flagged[test & (kinds == name)].mean()), 4)}
        for name in sorted(set(kinds[test]))
    }
    return out


def _all_images(classifier, dataset, *, index_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every image of a data set (all splits: it is never trained on), fitted to the model's
    input; labels index the model's classes (`index_labels`) or the data set's folders."""
    from training.datasets import class_indices, load_arrays

    metadata = classifier.bundle().metadata
    index_of = class_indices(dataset, metadata.classes, classifier.model_path) if index_labels else None
    return load_arrays(dataset, dataset.samples, metadata.input, progress=False, index_of=index_of)


def format_summary(entry: dict[str, Any]) -> str:
    """The figures in a few lines, as the verb prints them."""
    figures = entry["figures"]
    lines = [f"familiarity threshold {entry['threshold']:g} ({entry['chosen_on']})"]

    def share(name: str, row: dict[str, Any]) -> str:
        return f"{name}: {row['flagged']} of {row['n']} flagged ({row['flagged_share']:.1%})"

    def errors(row: dict[str, Any]) -> str:
        flagged_n, unflagged_n = row["flagged"], row["n"] - row["flagged"]
        text = (f"; error rate flagged {_pct(row['error_rate_flagged'])} ({row['errors_flagged']}/{flagged_n}), "
                f"unflagged {_pct(row['error_rate_unflagged'])} ({row['errors_unflagged']}/{unflagged_n})")
        text += f", ratio {row['error_ratio']:g}" if "error_ratio" in row else ""
        return text + (f"; ROC AUC of the distance for an error {row['error_auc']:.3f}" if "error_auc" in row else "")

    lines.append("  " + share("val", figures["val"]))
    if "test" in figures:
        lines.append("  " + share("test", figures["test"]) + errors(figures["test"]))
    for name, row in figures.get("external", {}).items():
        lines.append("  " + share(f"external {name}", row) + errors(row))
    for name, row in figures.get("wrong_inputs", {}).items():
        parts = ", ".join(f"{k} {v['flagged_share']:.1%} of {v['n']}" for k, v in row["by_folder"].items())
        lines.append("  " + share(f"wrong inputs {name}", row) + f" ({parts})")
        if row.get("test_part"):
            parts = ", ".join(f"{k} {v['flagged_share']:.1%} of {v['n']}" for k, v in row["test_part"].items())
            lines.append(f"  wrong inputs {name}, the modality check's test part: {parts}")
    return "\n".join(lines)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
