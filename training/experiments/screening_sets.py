"""The image sets a screening model is fitted and judged on, as cached frozen features.

Owns the mapping from data folders to feature rows: the training data set's train, val and test
splits, and each external folder whole (fundus-external, messidor2: never fitted or tuned on),
each with its labels in the model's class order, ICDR grades where the data gives them, and the
source of every image, so that every figure can be reported per source and per camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.experiments.screening_features import Backbone, cached_features, feature_network, network_features

logger = logging.getLogger(__name__)

FIT_SPLITS = ("train", "val", "test")


@dataclass
class FeatureSet:
    """Features of one image set with what is known of each image."""

    name: str
    features: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n,) indices into the model's classes
    grades: np.ndarray  # (n,) ICDR grade, -1 where ungraded
    sources: np.ndarray  # (n,) source name ("" when the data set names none)
    files: list[str]


def feature_sets(backbone: Backbone, data: str | Path, externals: list[str | Path], cache: Path,
                 log=logger.info) -> tuple[list[str], dict[str, FeatureSet], object]:
    """(classes, {"train", "val", "test", <external folder name>...: FeatureSet}, the feature
    network) for `backbone`; features come from `cache` when they were computed before."""
    from retina_desktop.core.model_card import InputSpec
    from training.datasets import ALL_SPLITS, class_indices, grades_of, load_arrays, load_dataset

    network, _ = feature_network(backbone)
    spec = InputSpec(backbone.size, backbone.size, backbone.fit, "none")
    dataset = load_dataset(data)
    classes = dataset.classes
    sets: dict[str, FeatureSet] = {}
    jobs = [(split, dataset, split, None) for split in FIT_SPLITS]
    for folder in externals:
        external = load_dataset(folder)
        jobs.append((Path(folder).resolve().name, external, ALL_SPLITS, class_indices(external, classes, "the model")))
    for name, source_set, split, index_of in jobs:
        samples = source_set.subset(split)
        key = f"{backbone.tag()}|{Path(source_set.root).resolve()}|{split}|{len(samples)}|{network.output.shape[-1]}"
        log(f"{name}: {len(samples)} images, {backbone.tag()}")

        def images_of(source_set=source_set, samples=samples, index_of=index_of):
            return load_arrays(source_set, samples, spec, index_of=index_of)[0]

        features = cached_features(network, images_of, key, cache, desc=f"{name} features")
        index = index_of or {c: i for i, c in enumerate(classes)}
        sets[name] = FeatureSet(
            name=name,
            features=features,
            labels=np.array([index[s.label] for s in samples], dtype=np.int32),
            grades=grades_of(samples),
            sources=np.array([s.source or name for s in samples]),
            files=[s.file for s in samples],
        )
    return classes, sets, network


def with_synthetic_features(train: FeatureSet, network, folders, classes: list[str], spec,
                            log=logger.info) -> FeatureSet:
    """The train split's features with those of the GAN images of `folders` after them (source
    "synthetic", ungraded). Not cached: they are few, and a folder's images may be redrawn."""
    from training.synthetic_images import read_synthetic

    images, labels = read_synthetic(folders, classes, spec)
    features = network_features(network, images, desc="synthetic features")
    log(f"synthetic training images: {len(images)} from {len(folders)} folder(s)")
    return FeatureSet(
        name=train.name,
        features=np.concatenate([train.features, features]),
        labels=np.concatenate([train.labels, labels]),
        grades=np.concatenate([train.grades, np.full(len(labels), -1, train.grades.dtype)]),
        sources=np.concatenate([train.sources, np.full(len(labels), "synthetic")]),
        files=train.files + [f"synthetic:{i}" for i in range(len(labels))],
    )
