"""The user's settings, kept as JSON in their config folder: image checks on or off, threshold
overrides, and the confidence below which an answer is called unsure.

A settings file that cannot be used (unreadable, not JSON, or JSON of the wrong shape or types)
is ignored with one warning naming it: the defaults are always a working state, and a bad file
must never stop the app or a command from starting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from retina_desktop.core.atomic import atomic_write
from retina_desktop.core.paths import APP_NAME

log = logging.getLogger(__name__)
# Settings are a few hundred bytes. An 80 MB file took 679 MB and 6 s to parse before it was
# refused; read no more than this.
MAX_SETTINGS_BYTES = 64 * 1024


class _TooLarge(Exception):
    pass


@dataclass
class Settings:
    checks_enabled: bool = True
    # Per-threshold overrides of the fitted values (names as in checks.CheckThresholds).
    check_overrides: dict[str, float] = field(default_factory=dict)
    unsure_below: float = 0.6

    @classmethod
    def from_dict(cls, data: Any) -> Settings:
        """Settings from parsed JSON; raises ValueError naming the first key of the wrong type.
        Unknown keys (from a newer version) are ignored."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, found {_json_type(data)}")
        values = {k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}}
        if "checks_enabled" in values and not isinstance(values["checks_enabled"], bool):
            raise ValueError(f'"checks_enabled" must be true or false, not {_json_type(values["checks_enabled"])}')
        overrides = values.get("check_overrides", {})
        if not isinstance(overrides, dict):
            raise ValueError(f'"check_overrides" must be an object of numbers, not {_json_type(overrides)}')
        for name, value in overrides.items():
            if not _is_number(value):
                raise ValueError(f'"check_overrides.{name}" must be a number, not {_json_type(value)}')
        if "unsure_below" in values and not (
            _is_number(values["unsure_below"]) and 0 <= values["unsure_below"] <= 1
        ):
            raise ValueError(f'"unsure_below" must be a number from 0 to 1, not {json.dumps(values["unsure_below"])}')
        return cls(**values)


def _is_number(value: Any) -> bool:
    # bool is an int in Python, but `true` is not a threshold.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number" if _is_number(value) else f"{json.dumps(value)}")


def settings_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.json"


def load_settings(warn: Callable[[str], None] | None = None) -> Settings:
    """The saved settings, or the defaults when there are none or the file cannot be used.

    A file that exists but cannot be used is reported once through `warn` (the CLI prints it;
    by default it is logged) and ignored.
    """
    path = settings_path()
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)  # never the whole of a huge file
        if len(data) > MAX_SETTINGS_BYTES:
            raise _TooLarge
        text = data.decode("utf-8")
    except FileNotFoundError:
        return Settings()
    except _TooLarge:
        problem = f"is larger than {MAX_SETTINGS_BYTES // 1024} KB, far more than settings take"
    except (OSError, UnicodeDecodeError) as err:
        problem = f"cannot be read ({getattr(err, 'strerror', None) or err})"
    else:
        try:
            return Settings.from_dict(json.loads(text))
        except ValueError as err:  # JSONDecodeError is a ValueError
            problem = f"is not valid ({err})"
    message = f'Settings file "{path}" {problem}; using the default settings'
    (warn or log.warning)(message)
    return Settings()


def save_settings(settings: Settings) -> None:
    with atomic_write(settings_path(), encoding="utf-8") as handle:
        json.dump(dataclasses.asdict(settings), handle, indent=2)
