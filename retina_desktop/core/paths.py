"""The one place that resolves bundled files and the user's folders.

Bundled files (models/, assets/) live next to the package in a checkout and under
`sys._MEIPASS` in a PyInstaller build. Files the app writes (logs, caches) go to the user's
folders from platformdirs, never to the current directory.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import platformdirs

APP_NAME = "RetinaDesktop"


def bundle_root() -> Path:
    """The folder that holds models/ and assets/ (the checkout, or the frozen bundle)."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parents[2]  # retina_desktop/core/paths.py


def models_dir() -> Path:
    return bundle_root() / "models"


def assets_dir() -> Path:
    return bundle_root() / "assets"


def default_model_path() -> Path:
    """The fundus classifier the app opens by default."""
    return models_dir() / "keras_model.h5"


def modality_model_path() -> Path:
    """The small fundus / OCT / other classifier behind the image checks."""
    return models_dir() / "modality" / "keras_model.h5"


def user_log_dir() -> Path:
    return _usable_dir("log", Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)))


def user_cache_dir() -> Path:
    return _usable_dir("cache", Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)))


# ---- when the user's folders cannot be made (no HOME, a read-only one) ------------------------

# Who is told when a folder falls back (the CLI prints "warning: ..."); by default it is logged.
_warn: Callable[[str], None] | None = None
_warned: set[str] = set()


def on_folder_fallback(warn: Callable[[str], None] | None) -> None:
    """Say through `warn` (once per folder) when a user folder falls back to a temporary one."""
    global _warn
    _warn = warn


def _usable_dir(kind: str, path: Path) -> Path:
    """`path`, created; or, when it cannot be (HOME missing or read-only, as on a locked-down
    clinic PC or a service account), a folder under the system's temporary folder, with one
    warning. Logs and caches only speed things up or help a bug report: no command may stop
    for want of them."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError as err:
        problem = err.strerror or str(err)
    suffix = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = Path(tempfile.gettempdir()) / f"{APP_NAME}-{suffix}" / kind
    try:
        fallback.mkdir(parents=True, exist_ok=True)
    except OSError:
        fallback = path  # nowhere to write: the caller's own error handling decides
    if kind not in _warned:
        _warned.add(kind)
        message = f'Cannot create the {kind} folder "{path}" ({problem}); using "{fallback}" instead'
        (_warn or logging.getLogger(__name__).warning)(message)
    return fallback
