"""What is judged: a model opened through the app's own service (so that what is judged is
exactly what a user gets), a split's images fitted to its input, and its answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.datasets import Dataset, class_indices, load_arrays


def open_classifier(model_path: Path, dataset: Dataset, trust: bool = False):
    """The app's service for `model_path` (Keras path); the data set's classes must be among the
    model's (a subset is fine: an external set may hold two of them)."""
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(model_path, trust_model=trust, backend="keras")
    class_indices(dataset, classifier.bundle().metadata.classes, model_path)
    return classifier


def load_split(classifier, dataset: Dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split's images fitted to the model's input, with labels indexing the MODEL's classes."""
    metadata = classifier.bundle().metadata
    index_of = class_indices(dataset, metadata.classes, classifier.model_path)
    return load_arrays(dataset, dataset.subset(split), metadata.input, progress=False, index_of=index_of)


def predict_samples(classifier, dataset: Dataset, split: str):
    """Raw probabilities for one split through the app's service, plus integer labels."""
    images, labels = load_split(classifier, dataset, split)
    return classifier.predict_arrays(images, calibrated=False), labels


def reported_labels(probs: np.ndarray, metadata) -> np.ndarray:
    """The class index the app reports for each row of calibrated probabilities: the larger
    probability, or a two-class model's stored operating threshold (`ModelMetadata.label_for`)."""
    return np.array([metadata.label_for([float(p) for p in row]) for row in probs], dtype=np.int64)
