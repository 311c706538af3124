"""One writer per output file: an exclusive lock held on a file beside it while it is written.

Two batch runs given the same `--out` shared one partial file and tore each other's rows. The
lock is an operating-system lock on an open file (`flock` on POSIX, `msvcrt.locking` on
Windows), not the file's mere existence, so a run that crashes or is killed cannot leave it
stuck: the system drops the lock with the process. The lock file records the holder's PID,
for a person who finds it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from retina_desktop.core.errors import OutputError


def lock_path_for(output: str | os.PathLike) -> Path:
    """`results.csv` -> `results.csv.lock`, beside it (not an image: a batch never reads it)."""
    output = Path(output)
    return output.with_name(output.name + ".lock")


def _try_lock(fd: int) -> bool:
    """Take the lock without waiting; False when another open file holds it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            # flock, not lockf: flock locks belong to the open file, so a second open in the
            # same process (a GUI running two jobs) is refused too.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as err:
        if sys.platform == "win32" and err.errno in (13, 36):  # EACCES / EDEADLOCK: held
            return False
        raise
    return True


@contextlib.contextmanager
def output_lock(output: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock on `output` (yields the lock file's path).

    Raises `OutputError` naming `output`, in one line, while another run holds it.
    """
    output = Path(output)
    lock = lock_path_for(output)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise OutputError(f'Cannot write "{output}": {err.strerror or err}') from err
        if not _try_lock(fd):
            os.close(fd)
            raise OutputError(
                f'Cannot write "{output}": another run is writing it now (lock "{lock}"); '
                "wait for it to finish or choose another output file"
            )
        # The last holder removes the file as it lets go; if that happened between our open
        # and our lock, we hold a lock on a removed file that nobody else will see: open again.
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current or sys.platform == "win32":  # Windows cannot remove an open file
            break
        os.close(fd)
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield lock
    finally:
        # Removed while still held, so that nobody can lock it in between (see above).
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)  # releases the lock
