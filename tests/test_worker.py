"""The GUI's worker: callbacks bound at submit, progress, errors, and stale results dropped once."""

from __future__ import annotations

import queue
import threading

from retina_desktop.core.errors import UserError
from retina_desktop.gui.worker import Requests, Worker


def _drain(messages: queue.Queue, until: threading.Event | None = None) -> None:
    """Deliver everything the worker sends, as the window's Tk loop does, until its job ended."""
    while True:
        delivery = messages.get(timeout=10)
        delivery.deliver()
        if delivery.event == "end" and (until is None or until.is_set()):
            return


def test_a_job_brings_back_its_result_progress_and_end():
    messages: queue.Queue = queue.Queue()
    worker = Worker(messages, "test-worker")
    seen = []

    def job(n, progress):
        for i in range(n):
            progress(i)
        return "made"

    worker.submit("count", job, 3, on_progress=lambda i: seen.append(("progress", i)),
                  on_done=lambda value: seen.append(("done", value)), on_end=lambda: seen.append(("end",)))
    _drain(messages)
    assert seen == [("progress", 0), ("progress", 1), ("progress", 2), ("done", "made"), ("end",)]
    worker.stop()


def test_errors_reach_the_job_or_the_workers_default():
    messages: queue.Queue = queue.Queue()
    fallback: list[str] = []
    worker = Worker(messages, "test-worker", default_error=fallback.append)
    own: list[str] = []

    def refuse():
        raise UserError('"x.png" is not an image')

    def crash():
        raise RuntimeError("a bug")

    worker.submit("refuse", refuse, on_error=own.append, on_done=lambda _: own.append("done?"))
    _drain(messages)
    worker.submit("crash", crash)
    _drain(messages)
    assert own == ['"x.png" is not an image']
    assert len(fallback) == 1 and fallback[0].startswith("Unexpected error, see ")
    worker.stop()


def test_a_superseded_request_delivers_no_result_but_still_ends():
    messages: queue.Queue = queue.Queue()
    worker = Worker(messages, "test-worker")
    requests = Requests()
    shown, ended = [], []
    gate = threading.Event()
    first = requests.new()
    worker.submit("slow", lambda progress: (progress("partial"), gate.wait(5), "old")[2], request=first,
                  on_progress=shown.append, on_done=shown.append, on_end=lambda: ended.append("old"))
    second = requests.new()  # the user asked again before the first answered
    gate.set()
    worker.submit("fast", lambda: "new", request=second, on_done=shown.append, on_end=lambda: ended.append("new"))
    _drain(messages)
    _drain(messages)
    assert shown == ["new"]
    assert ended == ["old", "new"]
    assert first.stale and not second.stale
    requests.drop_all()
    assert second.stale
    worker.stop()


def test_follow_up_work_belongs_to_the_newest_request():
    requests = Requests()
    image = requests.new()
    heatmap = requests.current()
    assert heatmap.number == image.number and not heatmap.stale
    requests.new()
    assert heatmap.stale
