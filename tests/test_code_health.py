"""The project's own checks, run by the test suite so CI runs them on every clean clone:

- import-linter: the app's layers (core < imaging < inference < services < gui/cli), the views
  using services only, the app never importing training, training's sibling packages acyclic
  (contracts in setup.cfg);
- ruff: the rule set pinned in pyproject.toml, with the ruff version pinned in setup.cfg;
- mypy on retina_desktop/ (settings in setup.cfg).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import ROOT


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_import_contracts_are_kept():
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "lint-imports is missing: install the test extra (pip install -e '.[test]')"
    done = _run([lint_imports, "--no-cache"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ruff_finds_nothing():
    done = _run([sys.executable, "-m", "ruff", "check", "--no-cache", "."])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_app_type_checks():
    done = _run([sys.executable, "-m", "mypy", "--no-incremental"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
