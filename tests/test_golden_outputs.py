"""The behaviour check kept for redesigns (tests/golden_outputs.py): it must write the same bytes
every time on the same code, or a `diff -r` of two runs could not tell a change from noise."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("golden_outputs.py")


def _differences(left: Path, right: Path) -> list[str]:
    compared = filecmp.dircmp(left, right)
    found = [f"{left.name}/{name}" for name in compared.left_only + compared.right_only + compared.diff_files]
    for name in compared.common_files:  # dircmp's shallow compare trusts sizes and times: read the bytes
        if not filecmp.cmp(left / name, right / name, shallow=False):
            found.append(name)
    for name in compared.common_dirs:
        found += _differences(left / name, right / name)
    return found


@pytest.mark.slow
def test_two_runs_of_the_same_code_write_the_same_bytes(shared_data, tmp_path):
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        done = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    written = sorted(p.relative_to(runs[0]).as_posix() for p in runs[0].rglob("*") if p.is_file())
    assert {"cli/predict-fundus.jsonl", "cli/batch-oct.csv", "synthesis/fundus/manifest.csv"} <= set(written)
    assert any(name.startswith("heatmaps/") for name in written) and any(name.endswith(".pdf") for name in written)
    assert _differences(*runs) == []


def test_it_refuses_a_folder_with_an_older_run_in_it(tmp_path):
    (tmp_path / "left-over.txt").write_text("from before")
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "is not empty" in done.stdout
