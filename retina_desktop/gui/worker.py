"""A background thread that runs the GUI's long jobs and reports back through a queue.

Jobs run in the order they were submitted. Each job's result, its progress messages and its
errors become `(kind, payload)` messages on a `queue.Queue` that the Tk side drains on its own
thread; nothing here touches a widget. A `UserError` becomes an "error" message carrying its
plain text; anything else is logged with its traceback and becomes "unexpected" with the log
file's path.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retina_desktop.core.errors import UserError
from retina_desktop.core.logs import log_unexpected

# Message kinds the worker itself emits (job results use the job's own kind).
ERROR = "error"
UNEXPECTED = "unexpected"
DONE = "done"


@dataclass(frozen=True)
class JobFailure:
    """Payload of "error" / "unexpected" messages: which job failed, and what to tell the user."""

    job: str
    message: str
    context: Any = None


class Worker:
    """One daemon thread taking jobs in order. `submit` may be called from any thread."""

    def __init__(self, messages: queue.Queue, name: str = "retina-worker") -> None:
        self.messages = messages
        self.name = name
        self._jobs: queue.Queue = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, kind: str, fn: Callable[..., Any], *args: Any, context: Any = None, **kwargs: Any) -> None:
        """Run `fn(*args, **kwargs)` on the worker; its return value arrives as `(kind, value)`.

        `fn` may post progress itself with `self.post`. Callable from any thread.
        """
        with self._pending_lock:
            self._pending += 1
        self._jobs.put((kind, fn, args, kwargs, context))

    def post(self, kind: str, payload: Any = None) -> None:
        """Put a message for the Tk side on the queue. Callable from any thread."""
        self.messages.put((kind, payload))

    @property
    def busy(self) -> bool:
        """True while a job is queued or running. Callable from any thread."""
        with self._pending_lock:
            return self._pending > 0

    def stop(self) -> None:
        """Ask the thread to end after the current job (jobs still queued are dropped)."""
        self._stopping.set()
        self._jobs.put(None)  # wakes the thread if it is waiting for a job

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the thread to end; True when it has.

        A worker may be inside TensorFlow or LiteRT native code; letting the interpreter shut
        down under it can crash the process, so the app waits for it when quitting.
        """
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None or self._stopping.is_set():
                return
            kind, fn, args, kwargs, context = job
            try:
                result = fn(*args, **kwargs)
            except UserError as err:
                self.post(ERROR, JobFailure(kind, str(err), context))
            except Exception as err:  # a bug: keep the thread alive, tell the user where the log is
                path = log_unexpected(f"Unexpected error in background job {kind!r}", err)
                self.post(UNEXPECTED, JobFailure(kind, f"Unexpected error, see {path}", context))
            else:
                self.post(kind, result)
            finally:
                with self._pending_lock:
                    self._pending -= 1
                self.post(DONE, kind)
