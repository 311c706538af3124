"""What every model the training package writes records about the run that made it."""

from __future__ import annotations

import datetime
import platform
import shlex
import sys

from retina_desktop import __version__


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def this_run(**facts) -> dict:
    """The command line, then `facts` (data, config, times...), then machine, date and version."""
    return {
        "command": "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **facts,
        "trained_on": platform.processor() or platform.machine(),
        "trained_at": utc_now(),
        "retina_desktop": __version__,
    }
