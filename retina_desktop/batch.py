"""Classifying every image under a folder, one CSV row per file, errors included as rows.

Used by the `batch` command and the GUI's Batch tab. A bad file becomes a row with its error;
it never stops the run. The CSV is written atomically when the run ends (or is cancelled).
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write
from .errors import UserError
from .imaging import list_images
from .records import Prediction


@dataclass(frozen=True)
class BatchRow:
    file: str
    prediction: Prediction | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def classify_folder(
    folder: str | Path,
    predict_files: Callable[[list[Path]], Iterator[tuple[Path, Prediction | UserError]]],
    cancel: threading.Event | None = None,
) -> Iterator[BatchRow]:
    """Yield a row per image under `folder`, in order; stops early when `cancel` is set.

    `predict_files` is `Classifier.predict_files`, which reads the next files while the model
    works on the current ones.
    """
    outcomes = predict_files(list_images(folder))
    try:
        # Cancel is looked at before each request: asking for the next row may start a batch.
        while cancel is None or not cancel.is_set():
            try:
                path, outcome = next(outcomes)
            except StopIteration:
                return
            if isinstance(outcome, UserError):
                yield BatchRow(str(path), error=str(outcome))
            else:
                yield BatchRow(str(path), prediction=outcome)
    finally:
        outcomes.close()  # drops the files queued for reading


def write_csv(path: str | Path, rows: list[BatchRow], classes: list[str]) -> None:
    """One row per file: file, label, confidence, a column per class probability, the image
    checks' verdict and reasons, and the error for files that could not be read."""
    with atomic_write(path, newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["file", "label", "confidence", *(f"p_{c}" for c in classes), "checks_passed", "check_reasons", "error"]
        )
        for row in rows:
            if row.prediction is None:
                writer.writerow([row.file, "", "", *([""] * len(classes)), "", "", row.error])
                continue
            p = row.prediction
            checks = p.checks
            writer.writerow(
                [
                    row.file,
                    p.label,
                    f"{p.confidence:.6f}",
                    *(f"{p.probabilities.get(c, float('nan')):.6f}" for c in classes),
                    "" if checks is None else str(checks.passed).lower(),
                    "" if checks is None else "; ".join(checks.reasons),
                    "",
                ]
            )
