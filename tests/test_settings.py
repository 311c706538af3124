"""User settings: saved and read back, and a broken file falls back to the defaults."""

from __future__ import annotations

from retina_desktop.settings import Settings, load_settings, save_settings, settings_path


def test_round_trip():
    settings = Settings(checks_enabled=False, check_overrides={"min_side": 96.0}, unsure_below=0.7)
    save_settings(settings)
    assert load_settings() == settings


def test_a_broken_file_gives_the_defaults():
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert load_settings() == Settings()
    path.write_text('{"unsure_below": 0.5, "from_a_newer_version": 1}')
    assert load_settings() == Settings(unsure_below=0.5)
