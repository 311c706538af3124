"""The packaged app, tested as shipped: build it with PyInstaller, then run what users run.

Slow (a build takes about half a minute to a few minutes): `python -m pytest -m slow tests/test_frozen.py`.
The build goes to a temporary folder; the checkout's models are compiled first by build.spec
if their compiled copies are missing or out of date.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, fundus_like

pytestmark = pytest.mark.slow
# TensorFlow alone would add about 1 GB, so this still catches it. The build ships compiled
# copies only (hash-checked by their manifests), not the .h5/.keras files they came from.
MAX_BUILD_MB = 300
SHIPPED = [
    ROOT / "models" / "keras_model.h5",
    ROOT / "models" / "oct" / "keras_model.h5",
    ROOT / "models" / "modality" / "keras_model.h5",
]


def _env(tmp: Path) -> dict[str, str]:
    """The user's folders in `tmp`, so a run neither reads nor writes the developer's."""
    env = dict(os.environ)
    for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME"):
        env[key] = str(tmp / key.lower())
    return env


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Path:
    """dist/RetinaDesktop built from this checkout by build.spec."""
    if shutil.which("pyinstaller") is None and subprocess.run([sys.executable, "-c", "import PyInstaller"]).returncode:
        pytest.skip('PyInstaller is not installed (pip install -e ".[build]")')
    work = tmp_path_factory.mktemp("pyinstaller")
    done = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "build.spec", "--noconfirm", "--distpath", str(work / "dist"),
         "--workpath", str(work / "build")],
        cwd=ROOT, capture_output=True, text=True, timeout=1500, env=_env(work),
    )
    assert done.returncode == 0, done.stderr[-4000:]
    folder = work / "dist" / "RetinaDesktop"
    assert (folder / "RetinaDesktop").exists() and (folder / "retina-desktop").exists()
    return folder


@pytest.fixture(scope="module")
def model_name() -> Path:
    """The bundled model to predict with, relative to models/ (the default when it is there)."""
    for path in SHIPPED:
        if path.exists():
            return path.relative_to(ROOT / "models")
    pytest.skip("no shipped model in models/ yet")


def test_the_build_is_small_and_carries_no_tensorflow(app):
    internal = app / "_internal"
    size = sum(p.stat().st_size for p in app.rglob("*") if p.is_file() and not p.is_symlink())
    assert size / 1e6 <= MAX_BUILD_MB, f"build is {size / 1e6:.0f} MB"
    for heavy in ("tensorflow", "keras", "tf_keras", "jax", "torch"):
        assert not (internal / heavy).exists(), f"{heavy} was bundled"
    for model in SHIPPED:
        if model.exists():
            bundled = internal / model.relative_to(ROOT)
            for name in ("keras_model.json", "labels.txt", "keras_model.tflite", "keras_model.tflite.json"):
                assert (bundled.parent / name).exists(), f"{bundled.parent / name} missing from the build"
            assert not bundled.exists(), f"{bundled} was bundled: the app runs its compiled copy"
    assert not list(internal.rglob("*.keras")), "a .keras file was bundled: the app runs compiled copies"
    assert (internal / "assets" / "icon.png").exists()


def test_frozen_predict_equals_the_unfrozen_app(app, model_name, tmp_path):
    sample = tmp_path / "eye.png"
    fundus_like(300, seed=3).save(sample)
    frozen = subprocess.run(
        [
            str(app / "RetinaDesktop"), "predict", str(sample), "--json",
            "--model", str(app / "_internal" / "models" / model_name),
        ],
        capture_output=True, text=True, timeout=120, env=_env(tmp_path),
    )
    assert frozen.returncode == 0, frozen.stderr
    source = subprocess.run(
        [
            sys.executable, "-m", "retina_desktop", "predict", str(sample), "--json",
            "--model", str(ROOT / "models" / model_name),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=_env(tmp_path),
    )
    assert source.returncode == 0, source.stderr
    ours, theirs = json.loads(frozen.stdout), json.loads(source.stdout)
    assert ours["label"] == theirs["label"] and ours["model"] == theirs["model"]
    assert ours.get("checks") == theirs.get("checks")
    for name, p in theirs["probabilities"].items():
        assert ours["probabilities"][name] == pytest.approx(p, abs=1e-4)


def test_frozen_self_test(app, tmp_path):
    done = subprocess.run(
        [str(app / "RetinaDesktop"), "--self-test"], capture_output=True, text=True, timeout=120, env=_env(tmp_path)
    )
    report = done.stdout
    assert "frozen build" in report and "Result:" in report, done.stderr
    assert "[ok  ] assets" in report and "[ok  ] Tcl/Tk" in report
    assert "[ok  ] TensorFlow: not imported" in report
    if all(model.exists() for model in SHIPPED):
        assert done.returncode == 0, report
        assert "runs on litert" in report
    written = list((tmp_path / "xdg_state_home").rglob("self-test-*.txt"))
    assert written and written[0].read_text() == report.split("Report written to")[0]


def test_frozen_gui_opens_a_window_under_xvfb(app, tmp_path):
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("needs Xvfb and xdotool")
    from tests.virtual_display import virtual_display

    with virtual_display(1280, 800) as display:
        env = dict(_env(tmp_path), DISPLAY=display)
        started = time.perf_counter()
        gui = subprocess.Popen(
            [str(app / "RetinaDesktop")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            window = ""
            while time.perf_counter() - started < 30 and not window and gui.poll() is None:
                found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "Retina Desktop"],
                                       env=env, capture_output=True, text=True)
                window = found.stdout.split()[0] if found.stdout.split() else ""
                time.sleep(0.2)
            assert window, (
                f"no window appeared (exit {gui.poll()}): {gui.stderr.read() if gui.poll() is not None else ''}"
            )
            # No window manager on Xvfb to send WM_DELETE_WINDOW: quit as a user would, Ctrl+Q.
            subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", "ctrl+q"], env=env, capture_output=True)
            try:
                gui.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail("the window was closed but the app did not exit")
        finally:
            if gui.poll() is None:
                gui.kill()
                gui.wait()
    assert gui.returncode == 0
