"""Errors a person can act on.

Anything raised as a `UserError` carries a plain message naming the file and what was expected;
the CLI prints it as one line and the GUI shows it in a dialog. Everything else is a bug and is
logged with its traceback (see `retina_desktop.core.logs`).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, worded so that they can fix it."""


class ImageError(UserError):
    """An image file that cannot be read or judged."""


class ModelError(UserError):
    """A model file, its labels or its sidecar that cannot be used."""


class UnsafeModelError(ModelError):
    """A model file that would run arbitrary code when loaded (Lambda layers)."""


class OutputError(UserError):
    """A file the user asked to be written (a CSV, a report) that cannot be written there."""
