"""Temperature scaling: turning raw softmax outputs into calibrated confidences.

A temperature is fitted on the validation split by training/evaluation/metrics.py and stored in the
model's sidecar; the service applies it, so that "90%" means right about 9 times in 10.
"""

from __future__ import annotations

import numpy as np


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) probabilities: softmax(log p / T)."""
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)
