"""The user's folders: when they cannot be made (no HOME, a read-only one), a temporary one."""

from __future__ import annotations

import csv
import json
import tempfile

import pytest

from retina_desktop.core import paths
from tests.conftest import fundus_like


@pytest.fixture
def no_home(tmp_path, monkeypatch):
    """HOME=/proc/nonexistent, as in the report, with the XDG folders under it too."""
    home = "/proc/nonexistent"
    monkeypatch.setenv("HOME", home)
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, f"{home}/{name.lower()}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(paths, "_warned", set())
    return tmp_path / "tmp"


def test_a_folder_that_cannot_be_made_falls_back_to_a_temporary_one_with_one_warning(no_home):
    said: list[str] = []
    paths.on_folder_fallback(said.append)
    try:
        first, again = paths.user_cache_dir(), paths.user_cache_dir()
        logs = paths.user_log_dir()
    finally:
        paths.on_folder_fallback(None)
    assert first == again and first.is_dir() and no_home in first.parents
    assert logs.is_dir() and logs != first
    assert len(said) == 2 and said[0].startswith('Cannot create the cache folder "/proc/nonexistent/')
    assert all("\n" not in line for line in said)


def test_predict_batch_and_info_work_without_a_home(no_home, small_bundle, tmp_path, capsys):
    from retina_desktop.cli import main
    from retina_desktop.core.logs import close_log, log_file

    image = tmp_path / "images" / "eye.png"
    image.parent.mkdir()
    fundus_like(200).save(image)
    try:
        assert main(["predict", str(image), "--model", str(small_bundle), "--json"]) == 0
        out, err = capsys.readouterr()
        assert "label" in json.loads(out)
        assert err.count("warning: Cannot create the cache folder") == 1 and "Traceback" not in err
        result = tmp_path / "r.csv"
        assert main(["batch", str(image.parent), "--out", str(result), "--model", str(small_bundle)]) == 0
        assert len(list(csv.DictReader(result.open()))) == 1
        assert main(["info", "--model", str(small_bundle)]) == 0
        assert no_home in log_file().parents  # the GUI's log of unexpected errors has a home too
    finally:
        paths.on_folder_fallback(None)
        close_log()
