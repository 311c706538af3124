"""Background threads that run the GUI's long jobs, and the callbacks each job brings back.

A job is submitted with its callbacks bound at once (`on_done`, `on_error`, `on_progress`,
`on_end`), so nothing routes results by name afterwards. The worker thread never touches a
widget: it puts `Delivery` messages on a `queue.Queue`, and the Tk side drains the queue and
calls `Delivery.deliver()` on its own thread, which runs the callback.

A job submitted for a `Request` (see `Requests`) is dropped once it is stale: when a newer
request of the same view was made before its result or progress reached the Tk thread, that
result or progress is not delivered. Errors are always delivered (the user should hear of a
failure), and `on_end` always runs (it restores buttons whatever happened).

A `UserError` reaches `on_error` as its plain text; anything else is logged with its traceback
and reaches `on_error` as "Unexpected error, see <log path>". A job without `on_error` uses the
worker's `default_error`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retina_desktop.core.errors import UserError
from retina_desktop.core.logs import log_unexpected


class Requests:
    """One view's requests, of which only the newest counts (a new image, a new batch of
    synthetic images). Tk thread only."""

    def __init__(self) -> None:
        self.latest = 0

    def new(self) -> Request:
        """A request that makes every earlier one stale."""
        self.latest += 1
        return Request(self, self.latest)

    def current(self) -> Request:
        """Follow-up work for the newest request (a heatmap for the image on screen)."""
        return Request(self, self.latest)

    def drop_all(self) -> None:
        """Make every request made so far stale (the view was cleared)."""
        self.latest += 1


@dataclass(frozen=True)
class Request:
    requests: Requests
    number: int

    @property
    def stale(self) -> bool:
        return self.number != self.requests.latest


@dataclass(frozen=True)
class Job:
    """One submitted job and the callbacks bound to it; the callbacks run on the Tk thread."""

    name: str
    on_done: Callable[[Any], None] | None = None
    on_error: Callable[[str], None] | None = None
    on_progress: Callable[[Any], None] | None = None
    on_end: Callable[[], None] | None = None
    request: Request | None = None


@dataclass(frozen=True)
class Delivery:
    """What a job sends to the Tk thread: its result, progress, error, or end."""

    job: Job
    event: str  # "done", "progress", "error" or "end"
    value: Any = None

    def deliver(self) -> None:
        """Run the job's callback for this event, unless it is a stale result. Tk thread only."""
        job = self.job
        if self.event == "end":
            if job.on_end is not None:
                job.on_end()
            return
        if self.event == "error":
            if job.on_error is not None:
                job.on_error(self.value)
            return
        if job.request is not None and job.request.stale:
            return  # superseded while it ran or while this waited in the queue
        handler = job.on_done if self.event == "done" else job.on_progress
        if handler is not None:
            handler(self.value)


class Worker:
    """One daemon thread taking jobs in order. `submit` may be called from any thread."""

    def __init__(self, messages: queue.Queue, name: str = "retina-worker",
                 default_error: Callable[[str], None] | None = None) -> None:
        self.messages = messages
        self.name = name
        self.default_error = default_error
        self._jobs: queue.Queue = queue.Queue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[str], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_end: Callable[[], None] | None = None,
        request: Request | None = None,
        **kwargs: Any,
    ) -> Job:
        """Run `fn(*args, **kwargs)` on the worker; its return value reaches `on_done`.

        With `on_progress`, `fn` is also given `progress=`, a function it calls (on the worker
        thread) with each update. Callable from any thread.
        """
        job = Job(name, on_done, on_error or self.default_error, on_progress, on_end, request)
        if on_progress is not None:
            kwargs["progress"] = lambda value: self._post(job, "progress", value)
        with self._pending_lock:
            self._pending += 1
        self._jobs.put((job, fn, args, kwargs))
        return job

    def _post(self, job: Job, event: str, value: Any = None) -> None:
        self.messages.put(Delivery(job, event, value))

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
            item = self._jobs.get()
            if item is None or self._stopping.is_set():
                return
            job, fn, args, kwargs = item
            try:
                result = fn(*args, **kwargs)
            except UserError as err:
                self._post(job, "error", str(err))
            except Exception as err:  # a bug: keep the thread alive, tell the user where the log is
                path = log_unexpected(f"Unexpected error in background job {job.name!r}", err)
                self._post(job, "error", f"Unexpected error, see {path}")
            else:
                self._post(job, "done", result)
            finally:
                with self._pending_lock:
                    self._pending -= 1
                self._post(job, "end")
