"""Atomic outputs: complete or untouched, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from retina_desktop.core.atomic import atomic_save, atomic_write


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["results.csv"]  # no temporary file left behind


def test_save_keeps_the_suffix_chain_and_permissions(tmp_path):
    target = tmp_path / "best.weights.h5"
    seen = []
    atomic_save(target, lambda tmp: (seen.append(tmp), open(tmp, "w").write("x")))
    assert seen[0].endswith(".weights.h5") and target.read_text() == "x"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
