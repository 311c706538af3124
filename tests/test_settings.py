"""User settings: saved and read back, and a broken file falls back to the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from retina_desktop.core.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip():
    settings = Settings(checks_enabled=False, check_overrides={"min_side": 96.0}, unsure_below=0.7)
    save_settings(settings)
    assert load_settings() == settings


def test_each_test_starts_with_its_own_user_folders():
    """test_round_trip above saved settings; they must not reach this test (conftest)."""
    import os

    from retina_desktop.core.logs import log_file

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


def test_a_huge_settings_file_is_refused_without_reading_it_whole(monkeypatch):
    import builtins

    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Valid JSON, 8 MB of it: parsing it whole is what took 679 MB for an 80 MB file.
    path.write_text('{"check_overrides": {' + ", ".join(f'"k{i}": {i}' for i in range(800_000)) + "}}")
    read_sizes: list[int] = []
    real_open = builtins.open

    def watching_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if Path(file) == path:
            real_read = handle.read
            handle = _Reader(handle, lambda n=-1: read_sizes.append(n) or real_read(n))
        return handle

    monkeypatch.setattr(builtins, "open", watching_open)
    warnings: list[str] = []
    assert load_settings(warn=warnings.append) == Settings()
    [message] = warnings
    assert str(path) in message and "larger than 64 KB" in message and "\n" not in message
    assert read_sizes and all(0 < n <= 64 * 1024 + 1 for n in read_sizes)


class _Reader:
    """A file handle whose read is watched."""

    def __init__(self, handle, read):
        self._handle, self.read = handle, read

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __getattr__(self, name):
        return getattr(self._handle, name)
