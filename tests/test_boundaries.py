"""The architecture's import rules, checked by walking every module's imports (ast).

- retina_desktop/ never imports training/ (the app is inference only);
- retina_desktop/gui/ never imports tensorflow or keras (it talks to the service layer);
- the service layer and training/ never import tkinter;
- core/ (records shared by both sides) imports neither tkinter nor tensorflow (core/quiet.py,
  the quiet Keras import, only inside its function);
- no module imports tensorflow or keras at its top level in retina_desktop/, so the window can
  appear before TensorFlow loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

HEAVY = {"tensorflow", "keras", "tf_keras"}


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level and node.module:
            names.add("." + node.module.split(".")[0])
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("retina_desktop"), ids=lambda p: str(p.relative_to(ROOT)))
def test_app_modules(path):
    names = _imports(path)
    assert "training" not in names, f"{path} imports training/"
    if "gui" in path.parts:
        assert not names & HEAVY, f"{path} (GUI) imports {names & HEAVY}"
    else:
        assert "tkinter" not in names, f"{path} (service layer) imports tkinter"
    assert not _imports(path, top_level_only=True) & HEAVY, f"{path} imports TensorFlow at import time"


@pytest.mark.parametrize("path", _modules("training"), ids=lambda p: str(p.relative_to(ROOT)))
def test_training_modules(path):
    assert "tkinter" not in _imports(path), f"{path} imports tkinter"


@pytest.mark.parametrize("path", _modules("retina_desktop/core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_neither_side(path):
    # core/quiet.py is the one door to Keras for every layer: it imports it inside import_keras().
    heavy = set() if path.name == "quiet.py" else HEAVY
    assert not _imports(path) & (heavy | {"tkinter"}), f"{path} imports tkinter or tensorflow"


def test_the_walker_sees_nested_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("def f():\n    import tensorflow as tf\n    from keras import layers\n")
    assert _imports(sample) == {"tensorflow", "keras"}
    assert _imports(sample, top_level_only=True) == set()
