"""Classifying every image under a folder, one CSV row per file, errors included as rows.

Used by the `batch` command and the GUI's Batch tab. A bad file becomes a row with its error;
it never stops the run. The command streams rows to `<name>.partial.csv` as files finish and
renames it onto the CSV at the end (`BatchCsv`), so finished work survives a failure; the GUI
writes its table atomically with `write_csv`. File names that are not valid UTF-8 (a Latin-1
name from an old share) are written with backslash escapes, so the CSV stays UTF-8 that any
reader opens, rather than failing the whole run at the last step.
"""

from __future__ import annotations

import contextlib
import csv
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retina_desktop.core.atomic import atomic_write, partial_path_for, write_via_partial
from retina_desktop.core.errors import OutputError, UserError
from retina_desktop.core.output_lock import output_lock
from retina_desktop.core.prediction import Prediction
from retina_desktop.imaging.decode import list_images, list_skipped


@dataclass(frozen=True)
class BatchRow:
    file: str
    prediction: Prediction | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def images_to_classify(folder: str | Path, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The images under `folder`, less `exclude` (the run's own output: `--out DIR/r.png` must
    not come back as a row)."""
    skip = {Path(p).resolve() for p in exclude}
    return [p for p in list_images(folder) if p.resolve() not in skip]


def skipped_files(folder: str | Path, exclude: Iterable[str | Path] = ()) -> list[Path]:
    """The files under `folder` a batch does not read (not images it knows), less `exclude`."""
    skip = {Path(p).resolve() for p in exclude}
    return [p for p in list_skipped(folder) if p.resolve() not in skip]


def classify_folder(
    folder: str | Path,
    predict_files: Callable[[list[Path]], Generator[tuple[Path, Prediction | UserError], None, None]],
    cancel: threading.Event | None = None,
    exclude: Iterable[str | Path] = (),
) -> Iterator[BatchRow]:
    """Yield a row per image under `folder` (less `exclude`), in order; stops early when
    `cancel` is set.

    `predict_files` is `Classifier.predict_files`, which reads the next files while the model
    works on the current ones.
    """
    outcomes = predict_files(images_to_classify(folder, exclude))
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


# How the CSV is encoded: UTF-8, with names that are not valid UTF-8 escaped (see above).
_CSV_OPEN = {"newline": "", "encoding": "utf-8", "errors": "backslashreplace"}


def csv_header(classes: list[str]) -> list[str]:
    return [
        "file", "label", "confidence", "unsure", "not_judged", "answer", *(f"p_{c}" for c in classes),
        "unfamiliar", "familiarity_distance", "checks_passed", "check_reasons", "error",
    ]


def csv_fields(row: BatchRow, classes: list[str]) -> list[str]:
    """One row per file: file, the answer (label and confidence empty when the image was not
    judged, `unsure` and `not_judged` true/false, and the answer in words, all from
    `records.Answer`), a column per class probability, the unfamiliar-image flag (true/false,
    empty when the model has none) with its distance, the image checks' verdict and reasons,
    and the error for files that could not be read."""
    if row.prediction is None:
        return [row.file, "", "", "", "", "", *([""] * len(classes)), "", "", "", "", row.error]
    p = row.prediction
    answer = p.answer()
    checks = p.checks
    return [
        row.file,
        answer.label or "",
        "" if answer.probability is None else f"{answer.probability:.6f}",
        str(answer.unsure).lower(),
        str(answer.not_judged).lower(),
        answer.text(),
        *(f"{p.probabilities.get(c, float('nan')):.6f}" for c in classes),
        "" if answer.unfamiliar is None else str(answer.unfamiliar).lower(),
        "" if answer.familiarity_distance is None else f"{answer.familiarity_distance:.4f}",
        "" if checks is None else str(checks.passed).lower(),
        "" if checks is None else "; ".join(checks.reasons),
        "",
    ]


def write_csv(path: str | Path, rows: list[BatchRow], classes: list[str]) -> None:
    """All rows at once, atomically (the GUI's export of its table)."""
    with atomic_write(path, **_CSV_OPEN) as handle:
        writer = csv.writer(handle)
        writer.writerow(csv_header(classes))
        writer.writerows(csv_fields(row, classes) for row in rows)


class BatchCsv:
    """The batch CSV, written row by row as files finish.

    Entering checks that `path` can be written, by creating its partial file, before any
    image is read (a folder, a path under a regular file, a place the user cannot write are an
    `OutputError` naming `path`). It first takes `path`'s lock (`output_lock`): a second run
    with the same output is refused in one line while this one holds it, instead of both
    writing one partial file. Rows are flushed as they come; leaving without an error renames
    the partial file onto `path`. After a failure the partial file keeps the finished rows
    (`partial`, `rows` say where and how many); with no rows it is removed. A write that fails
    (a full disk) is an `OutputError` naming `path`; the previous `path` is left as it was.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.partial = partial_path_for(self.path)
        self.rows = 0
        self._classes: list[str] | None = None
        self._writer: Any = None
        self._stack = contextlib.ExitStack()

    @property
    def own_files(self) -> tuple[Path, Path]:
        """The files this output writes: a batch over their folder must not read them back."""
        return self.path, self.partial

    def __enter__(self) -> BatchCsv:
        _check_output(self.path)
        try:
            self._stack.enter_context(output_lock(self.path))  # before the partial file is truncated
            handle = self._stack.enter_context(write_via_partial(self.path, **_CSV_OPEN))
        except OSError as err:
            self._stack.close()
            raise OutputError(f'Cannot write "{self.path}": {err.strerror or err}') from err
        except BaseException:
            self._stack.close()
            raise
        self._writer = csv.writer(handle)
        self._handle = handle
        return self

    def start(self, classes: list[str]) -> None:
        """The model's classes, which name the probability columns."""
        self._classes = list(classes)

    def write(self, row: BatchRow) -> None:
        if self._classes is None:
            raise RuntimeError("BatchCsv.start(classes) must come before the first row")
        try:
            if self.rows == 0:
                self._writer.writerow(csv_header(self._classes))
            self._writer.writerow(csv_fields(row, self._classes))
            self._handle.flush()  # a row written is a row kept, whatever happens next
        except OSError as err:  # a full disk, a share gone: one line, not a traceback
            raise self._write_error(err) from err
        self.rows += 1

    def _write_error(self, err: OSError) -> OutputError:
        return OutputError(f'Cannot write "{self.path}": {err.strerror or err}')

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None and self.rows == 0 and self._classes is not None:
            self._writer.writerow(csv_header(self._classes))  # an empty folder: header only
        if kind is not None and self.rows == 0:
            # Nothing finished: no partial file to keep. Truncating it lets the context below
            # see it empty and remove it.
            with contextlib.suppress(OSError, ValueError):
                self._handle.truncate(0)
        try:
            self._stack.__exit__(kind, error, traceback)
        except OSError as err:  # the last flush, fsync or rename: the old CSV stays as it was
            if kind is None:
                raise self._write_error(err) from err
            # Otherwise the error already on its way says more; it goes on when this returns.


def _check_output(path: Path) -> None:
    """Refuse, naming `path`, an output that is a folder or lies under something not a folder."""
    try:
        if path.is_dir():
            example = path / "results.csv"
            raise OutputError(f'Cannot write "{path}": it is a folder (give a file name, such as "{example}")')
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(f'Cannot write "{path}": "{parent}" is a file, not a folder')
                break
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f'Cannot write "{path}": {err.strerror or err}') from err
