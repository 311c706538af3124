"""The user's settings, kept as JSON in their config folder: image checks on or off, threshold
overrides, and the confidence below which an answer is called unsure."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .atomic import atomic_write
from .paths import APP_NAME


@dataclass
class Settings:
    checks_enabled: bool = True
    # Per-threshold overrides of the fitted values (names as in checks.CheckThresholds).
    check_overrides: dict[str, float] = field(default_factory=dict)
    unsure_below: float = 0.6

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def settings_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"


def load_settings() -> Settings:
    """The saved settings, or the defaults when there are none or the file is unreadable."""
    path = settings_path()
    try:
        return Settings.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return Settings()


def save_settings(settings: Settings) -> None:
    with atomic_write(settings_path(), encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(settings), handle, indent=2)
