"""User settings: saved and read back, and a broken file falls back to the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from retina_desktop.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip():
    settings = Settings(checks_enabled=False, check_overrides={"min_side": 96.0}, unsure_below=0.7)
    save_settings(settings)
    assert load_settings() == settings


def test_each_test_starts_with_its_own_user_folders():
    """test_round_trip above saved settings; they must not reach this test (conftest)."""
    import os

    from retina_desktop.logs import log_file

    assert not settings_path().exists()
    assert Path(os.environ["XDG_CONFIG_HOME"]) in settings_path().parents
    assert Path(os.environ["XDG_STATE_HOME"]) in log_file().parents


def test_a_broken_file_gives_the_defaults():
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert load_settings() == Settings()
    path.write_text('{"unsure_below": 0.5, "from_a_newer_version": 1}')
    assert load_settings() == Settings(unsure_below=0.5)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "null",
        '"s"',
        "3",
        '{"check_overrides": []}',
        '{"check_overrides": {"min_side": "big"}}',
        '{"check_overrides": {"min_side": true}}',
        '{"check_overrides": {"min_side": NaN}}',
        '{"unsure_below": "x"}',
        '{"unsure_below": 7}',
        '{"checks_enabled": "yes"}',
    ],
)
def test_valid_json_of_the_wrong_shape_warns_once_and_gives_the_defaults(text):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    warnings: list[str] = []
    assert load_settings(warn=warnings.append) == Settings()
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert str(path) in warnings[0] and "default" in warnings[0]


def test_garbage_bytes_warn_too_and_a_missing_file_does_not():
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xfe\x00garbage")
    warnings: list[str] = []
    assert load_settings(warn=warnings.append) == Settings()
    assert len(warnings) == 1 and str(path) in warnings[0]
    path.unlink()
    assert load_settings(warn=warnings.append) == Settings() and len(warnings) == 1
