"""The log file for unexpected errors, in the user's log folder.

Errors a person can act on are shown as plain messages; anything else is written here with its
traceback, and the user is told where the file is.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from retina_desktop.core.paths import user_log_dir

_LOG_NAME = "retina-desktop.log"
_configured: Path | None = None


def log_file() -> Path:
    """Set up (once) and return the rotating log file."""
    global _configured
    if _configured is None:
        path = user_log_dir() / _LOG_NAME
        try:
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=1_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError:
            # Not even a temporary folder can be written (see paths): the app still runs, and
            # unexpected errors go to stderr instead of a file.
            handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
        logger = logging.getLogger("retina_desktop")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        _configured = path
    return _configured


def log_unexpected(message: str, exc: BaseException) -> Path:
    """Record an unexpected error with its traceback; returns the log file's path."""
    path = log_file()
    logging.getLogger("retina_desktop").error(message, exc_info=(type(exc), exc, exc.__traceback__))
    return path


def close_log() -> None:
    """Close the log file, so that the next `log_file()` opens it afresh in the user's log folder
    of that moment (tests give every test its own folders)."""
    global _configured
    logger = logging.getLogger("retina_desktop")
    for handler in [h for h in logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]:
        logger.removeHandler(handler)
        handler.close()
    _configured = None
