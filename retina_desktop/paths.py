"""The one place that resolves bundled files and the user's folders.

Bundled files (models/, assets/) live next to the package in a checkout and under
`sys._MEIPASS` in a PyInstaller build. Files the app writes (logs, caches) go to the user's
folders from platformdirs, never to the current directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "RetinaDesktop"


def bundle_root() -> Path:
    """The folder that holds models/ and assets/ (the checkout, or the frozen bundle)."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root)
    return Path(__file__).resolve().parent.parent


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
    path = Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_cache_dir() -> Path:
    path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
