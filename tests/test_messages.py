"""Tests for retina_desktop.gui.messages: worker messages reach the owner of their prefix."""

from __future__ import annotations

from typing import Any

import pytest

from retina_desktop.gui.messages import MessageRouter, prefix_of
from retina_desktop.gui.worker import DONE, ERROR, UNEXPECTED, JobFailure


class Owner:
    def __init__(self, *prefixes: str) -> None:
        self.message_prefixes = prefixes
        self.seen: list[tuple] = []

    def handle(self, kind: str, payload: Any) -> None:
        self.seen.append(("handle", kind, payload))

    def job_done(self, kind: str) -> None:
        self.seen.append(("done", kind))

    def job_failed(self, kind: str, message: str) -> None:
        self.seen.append(("failed", kind, message))


def test_each_message_goes_to_the_owner_of_its_prefix() -> None:
    unowned: list[JobFailure] = []
    router = MessageRouter(unowned.append)
    tab, window = Owner("analyse"), Owner("app", "model")
    router.register(tab)
    router.register(window)
    router.dispatch("analyse.prediction", 1)
    router.dispatch("model.loaded", 2)
    router.dispatch(DONE, "analyse.analysis")
    router.dispatch(ERROR, JobFailure("app.chart", "no chart"))
    router.dispatch(UNEXPECTED, JobFailure("analyse.report", "see log"))
    assert tab.seen == [("handle", "analyse.prediction", 1), ("done", "analyse.analysis"),
                        ("failed", "analyse.report", "see log")]
    assert window.seen == [("handle", "model.loaded", 2), ("failed", "app.chart", "no chart")]
    # Nobody owns "analysed.*" (a prefix is a whole word, not the start of one).
    router.dispatch("analysed.x", 3)
    router.dispatch(DONE, "analysed.x")
    router.dispatch(ERROR, JobFailure("analysed.x", "lost"))
    assert len(tab.seen) == 3 and [f.message for f in unowned] == ["lost"]


def test_a_prefix_has_one_owner() -> None:
    router = MessageRouter(lambda failure: None)
    router.register(Owner("batch"))
    with pytest.raises(ValueError, match="'batch'"):
        router.register(Owner("augment", "batch"))
    assert prefix_of("augment.vessel_image") == "augment" and prefix_of("plain") == "plain"
