"""The project's own import graph (retina_desktop/ and training/), walked with ast: no cycles, and
no module imports another's private names.

The rule for cycles counts every import statement, at module level or inside a function: a
function-level import that closes a cycle only hides it (it runs as soon as the function is
called, and readers still have to hold both modules in mind). An edge goes from a module to the
module an import statement names (`from .a import b` -> `a`, or `a.b` when b is itself a
module); importing a submodule does not count as importing its package's `__init__` (ours only
hold a docstring and the version). Modules loaded by name at run time (training/cli.py's
`importlib.import_module` table of verbs) are not walked; nothing imports cli.py back.

A private name is one with a leading underscore (not a dunder); importing one from another
module of ours (`from .heatmaps import _output_layer`) ties that module to the other's insides.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("retina_desktop", "training")

# Private imports tolerated, each as (importing module, imported module, name): none. A name
# another module needs is public, or moves to a module of its own.
ALLOWED_PRIVATE_IMPORTS: set[tuple[str, str, str]] = set()


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    return {_module_name(p, root): p for package in packages for p in sorted((root / package).rglob("*.py"))}


def _imported(module: str, path: Path, node: ast.stmt, modules: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for one import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if node.level:
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = []
    for alias in node.names:
        submodule = f"{target}.{alias.name}"
        found.append((submodule, None) if submodule in modules else (target, alias.name))
    return found


def import_graph(modules: dict[str, Path]) -> tuple[dict[str, dict[str, int]], list[tuple[str, int, str, str]]]:
    """Edges {module: {imported module: first line}} within `modules`, and every private import
    across modules as (module, line, imported module, name)."""
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}
    private = []
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target, name in _imported(module, path, node, modules):
                if target not in modules or target == module:
                    continue
                edges[module].setdefault(target, node.lineno)
                if name and name.startswith("_") and not name.startswith("__"):
                    private.append((module, node.lineno, target, name))
    return edges, private


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(component: list[str], edges) -> str:
    inside = [f"{a} -> {b} (line {line})" for a in component for b, line in edges[a].items() if b in component]
    return f"{', '.join(component)}: " + "; ".join(inside)


def test_no_import_cycles():
    edges, _ = import_graph(project_modules())
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, edges) for c in found)


def test_no_private_imports_across_modules():
    _, private = import_graph(project_modules())
    offending = [f"{m} line {line}: from {t} import {name}" for m, line, t, name in private
                 if (m, t, name) not in ALLOWED_PRIVATE_IMPORTS]
    assert not offending, "private names imported from another module:\n" + "\n".join(offending)


def test_the_training_command_line_builds_its_options_without_keras():
    """`training.gan.trainer` and `training.pix2pix.trainer` load Keras when imported (their trainers subclass
    keras.Model at module level); `python -m training --help` must not pay for that."""
    code = ("import sys; from training.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_walker_finds_cycles_through_function_level_imports_and_private_names(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing, _hidden\n")
    (package / "b.py").write_text("def thing():\n    from . import c\n")
    (package / "c.py").write_text("import pkg.a\n")
    (package / "d.py").write_text("from pkg import a\nfrom .a import __doc__\n")
    modules = project_modules(tmp_path, ("pkg",))
    edges, private = import_graph(modules)
    assert edges["pkg.a"] == {"pkg.b": 1} and edges["pkg.b"] == {"pkg.c": 2} and edges["pkg.c"] == {"pkg.a": 1}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert private == [("pkg.a", 1, "pkg.b", "_hidden")]
    (package / "c.py").write_text("import numpy\n")
    assert cycles(import_graph(project_modules(tmp_path, ("pkg",)))[0]) == []
