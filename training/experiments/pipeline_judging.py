"""The pipeline's judging stage beyond the test split's figures: on another camera (the
external set: each disease against healthy eyes) and per source of the test images (scarce-class
sensitivity and macro AUC), the questions a single in-distribution figure cannot answer."""

from __future__ import annotations

import numpy as np

from training.evaluation.metrics import macro_auc
from training.evaluation.subsets import versus_healthy
from training.experiments.pipeline_data import ExperimentData


class Judging:
    """A classifier's probabilities judged on the external set and per source."""

    def __init__(self, data: ExperimentData):
        self.data, self.config, self.classes = data, data.config, data.classes

    def external_figures(self, probs: np.ndarray) -> dict:
        """On the other camera: each disease against the healthy class (AUC, sensitivity,
        healthy eyes called healthy) and each present class's sensitivity."""
        labels = self.data.external_arrays()[1]
        versus = versus_healthy(probs, labels, probs.argmax(axis=1), list(self.classes),
                                n_bootstrap=self.config.bootstrap)
        present = sorted(int(c) for c in np.unique(labels))
        return {
            "data": self.config.external,
            "n": int(len(labels)),
            "sensitivity": {self.classes[c]: float(np.mean(probs[labels == c].argmax(axis=1) == c)) for c in present},
            "versus_normal": versus,
        }

    def per_source(self, probs: np.ndarray, labels: np.ndarray) -> dict:
        """Scarce-class sensitivity and macro AUC on each source's test images (fundus4's
        `source` column); empty when the split has no sources."""
        sources = np.array([s.source for s in self.data.dataset.subset("test")])
        figures = {}
        for source in sorted(set(sources) - {""}):
            mask = sources == source
            entry = {"n": int(mask.sum()), "macro_auc": macro_auc(labels[mask], probs[mask])}
            for c in self.config.scarce:
                index = self.classes.index(c)
                of_class = mask & (labels == index)
                if of_class.any():
                    entry[f"{c}_sensitivity"] = float(np.mean(probs[of_class].argmax(axis=1) == index))
                    entry[f"{c}_n"] = int(of_class.sum())
            figures[source] = entry
        return figures
