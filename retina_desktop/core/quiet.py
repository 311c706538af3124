"""Importing Keras/TensorFlow without log spam on the user's terminal.

TensorFlow's C++ side writes absl/oneDNN/CUDA notices straight to file descriptor 2 before any
Python setting can stop them, so the only reliable silencer is to point descriptor 2 elsewhere
while the import runs. What it printed is kept (and replayed if the import fails), so nothing
useful is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_keras = None  # set only once the whole import has finished
# Descriptor 2 is the process's, not a thread's: two captures overlapping on different threads
# would restore each other's descriptor and could leave stderr pointing at a deleted file.
_capture_lock = threading.RLock()

# Read by TensorFlow when it loads; the defaults make it chatty.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def stderr_captured() -> Iterator[list[str]]:
    """Send OS-level stderr to a temporary file; yields a list that receives its text. One
    capture at a time in the process (a second thread waits)."""
    out: list[str] = []
    with _capture_lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable fd 2 (a windowed frozen app): nothing to hide
            yield out
            return
        yield from _captured_into(out, saved)


def _captured_into(out: list[str], saved: int) -> Iterator[list[str]]:
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield out
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            out.append(sink.read().decode("utf-8", "replace"))


def keras_backend() -> str:
    """The backend Keras runs on in this process ("tensorflow" unless KERAS_BACKEND says), known
    without importing Keras."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def import_keras():
    """Import and return `keras` quietly. Safe to call from any thread, any number of times."""
    global _keras
    if _keras is not None:
        return _keras
    with _lock:
        if _keras is not None:  # another thread finished the import while we waited
            return _keras
        tf = None
        try:
            with stderr_captured() as captured:
                import keras

                # TensorFlow only under its own backend: training runs on JAX where there is
                # no TensorFlow to import (a GPU machine; issue #35).
                if keras.backend.backend() == "tensorflow":
                    import tensorflow as tf
        except Exception:
            sys.stderr.write("".join(captured))
            raise
        if tf is not None:
            tf.get_logger().setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
        with contextlib.suppress(Exception):
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        _keras = keras
        return keras
