"""Atomic file output: write beside the target, then rename over it.

A crash or a full disk half-way through leaves the previous file intact, never a truncated one.
Output written as long work completes (`write_via_partial`) goes to a visible partial file
instead of a hidden one, so that what finished survives a failure, under a name that says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# mkstemp creates files readable by their owner only; outputs should get the permissions any
# new file gets (0666 less the umask). The umask is read once, at import, before any thread.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


def _publish(tmp_name: str, target: Path) -> None:
    os.chmod(tmp_name, _FILE_MODE)
    os.replace(tmp_name, target)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to `path`; on success it replaces `path` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so that os.replace is a rename on one file system.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_save(path: str | os.PathLike, save, suffix: str | None = None) -> None:
    """Call `save(tmp_path)` for writers that want a file name (Keras, matplotlib, PIL).

    The temporary name keeps the target's suffix because such writers pick the format from it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or "".join(target.suffixes), dir=target.parent
    )
    os.close(fd)
    try:
        save(tmp_name)
        _publish(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def partial_path_for(path: str | os.PathLike) -> Path:
    """`results.csv` -> `results.partial.csv`: beside it, and still opened by the same program."""
    target = Path(path)
    return target.with_name(f"{target.stem}.partial{target.suffix}")


@contextlib.contextmanager
def write_via_partial(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Write `partial_path_for(path)`; on success it replaces `path` in one rename.

    On failure or interrupt the partial file stays with everything written so far (the caller
    says where it is); it is removed only if nothing was written. Opening it is a real test
    that `path` can be written, so callers open it before the work whose output it holds.
    """
    target = Path(path)
    partial = partial_path_for(target)
    handle = open(partial, mode, **open_kwargs)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _publish(str(partial), target)
    except BaseException:
        with contextlib.suppress(OSError):
            if partial.stat().st_size == 0:
                partial.unlink()
        raise
