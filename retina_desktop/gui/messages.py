"""Which part of the window owns a worker message, and the one table that routes them.

A worker message is `(kind, payload)` with `kind` = "<prefix>.<name>" ("analyse.prediction",
"batch.row"). The prefix names the owner: a tab, or the main window itself for "app.*" and
"model.*". An owner says which prefixes are its own in `message_prefixes` and is registered
once, so a new tab adds no branch to the main window. The worker's own kinds wrap a job's kind:
`DONE` carries it, `ERROR` and `UNEXPECTED` carry a `JobFailure` naming it; they go to the
owner of that job. Everything here runs on the Tk thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from retina_desktop.gui.worker import DONE, ERROR, UNEXPECTED, JobFailure


class MessageOwner(Protocol):
    """What the router needs from a tab (or the window) that owns some message kinds."""

    message_prefixes: ClassVar[tuple[str, ...]]

    def handle(self, kind: str, payload: Any) -> None:
        """A job's result or progress message of this owner's kinds."""

    def job_done(self, kind: str) -> None:
        """The job `kind` ended, whether it succeeded or failed."""

    def job_failed(self, kind: str, message: str) -> None:
        """The job `kind` failed: restore the owner's state and tell the user `message`."""


def prefix_of(kind: str) -> str:
    """ "analyse.prediction" -> "analyse"."""
    return kind.split(".", 1)[0]


class MessageRouter:
    """Prefix -> owner, and `dispatch` for one message. Tk thread only."""

    def __init__(self, unowned_failure: Callable[[JobFailure], None]) -> None:
        self._owners: dict[str, MessageOwner] = {}
        self._unowned_failure = unowned_failure

    def register(self, owner: MessageOwner) -> None:
        for prefix in owner.message_prefixes:
            if prefix in self._owners:
                raise ValueError(f"message prefix {prefix!r} already belongs to {self._owners[prefix]!r}")
            self._owners[prefix] = owner

    def owner(self, kind: str) -> MessageOwner | None:
        return self._owners.get(prefix_of(kind))

    def dispatch(self, kind: str, payload: Any) -> None:
        """Hand one message to its owner; messages nobody owns are dropped, except failures."""
        if kind == DONE:
            owner = self.owner(payload)
            if owner is not None:
                owner.job_done(payload)
        elif kind in (ERROR, UNEXPECTED):
            owner = self.owner(payload.job)
            if owner is not None:
                owner.job_failed(payload.job, payload.message)
            else:
                self._unowned_failure(payload)
        else:
            owner = self.owner(kind)
            if owner is not None:
                owner.handle(kind, payload)
