"""Screenshots of the running application for the README: `python3 docs/screenshots/take.py --out DIR`.

For each screen size it starts a virtual display (Xvfb), runs `python -m retina_desktop IMAGE`
as a user would, waits until the window title names the analysed image, turns the heatmap on
(Ctrl+H), captures the Analyse tab, then runs a small folder through the Batch tab (Ctrl+B and
the folder typed into Tk's own folder dialog) and captures that. Tools: Xvfb, xdotool and
ImageMagick's `import`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script from anywhere: the checkout it belongs to comes first on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from retina_desktop.core.paths import assets_dir, bundle_root  # noqa: E402
from tests.virtual_display import pump, virtual_display  # noqa: E402

SIZES = ((1280, 800), (1024, 700))
SHARED_DATA = bundle_root().parent / "shared" / "data"


def _xdotool(env: dict, *args: str) -> str:
    done = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def _wait_window(env: dict, name: str, timeout: float, app: subprocess.Popen | None = None) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app is not None and app.poll() is not None:
            raise RuntimeError(f"the application exited with status {app.returncode}")
        found = _xdotool(env, "search", "--name", name)
        if found:
            return found.splitlines()[0]
        time.sleep(0.5)
    raise RuntimeError(f"no window named {name!r} within {timeout:.0f} s")


def _capture(env: dict, path: Path) -> Path:
    subprocess.run(["import", "-window", "root", str(path)], env=env, check=True, timeout=60)
    print(f"wrote {path}")
    return path


def default_image() -> Path:
    """A real fundus photograph from the shared data (the README's: an external camera's
    retinopathy photograph, gradable), else a sample in assets/."""
    readme_image = SHARED_DATA / "fundus-external" / "diabetic_retinopathy" / "1225_OI_f_1.jpg"
    if readme_image.is_file():
        return readme_image
    for folder in (SHARED_DATA / "fundus4" / "glaucoma", assets_dir() / "samples", assets_dir()):
        if folder.is_dir():
            images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if images:
                return images[0]
    raise RuntimeError("no fundus image found: pass --image")


def demo_folder(target: Path, per_class: int = 2) -> Path:
    """A small folder of links to real images (one per class and a file that is not an image)."""
    target.mkdir(parents=True, exist_ok=True)
    root = SHARED_DATA / "fundus4"
    if root.is_dir():
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for image in sorted(class_dir.iterdir())[:per_class]:
                link = target / f"{class_dir.name}_{image.name}"
                if not link.exists():
                    link.symlink_to(image)
    else:
        shutil.copy(default_image(), target / default_image().name)
    (target / "scan_notes.jpg").write_text("not an image\n")
    return target


def shoot(
    out: Path, size: tuple[int, int], image: Path, folder: Path, model: str | None, wait: float, tag: str = ""
) -> list[Path]:
    width, height = size
    name = f"-{tag}" if tag else ""
    written = []
    with virtual_display(width, height) as display:
        # The package's own checkout comes first, wherever this runs from (the app ignores the cwd).
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "DISPLAY": display, "PYTHONPATH": path}
        command = [sys.executable, "-m", "retina_desktop", str(image)] + (["--model", model] if model else [])
        app = subprocess.Popen(command, env=env, cwd=tempfile.gettempdir())
        try:
            window = _wait_window(env, f"Retina Desktop: {image.name}", wait, app)
            # No window manager on Xvfb: fill the screen as a maximised window would.
            _xdotool(env, "windowmove", window, "0", "0")
            _xdotool(env, "windowsize", window, str(width), str(height))
            time.sleep(6)  # the heatmap follows the result
            _xdotool(env, "key", "--window", window, "ctrl+h")
            time.sleep(2)
            written.append(_capture(env, out / f"analyse{name}-{width}x{height}.png"))

            _xdotool(env, "key", "--window", window, "ctrl+b")
            dialog = _wait_window(env, "Choose a folder", 20)
            _xdotool(env, "key", "--window", dialog, "ctrl+a", "ctrl+k")  # Tk entry: home, kill line
            _xdotool(env, "type", "--window", dialog, str(folder))
            _xdotool(env, "key", "--window", dialog, "Return")  # into the folder
            time.sleep(1)
            _xdotool(env, "key", "--window", dialog, "Return")  # choose it
            time.sleep(4 + len(list(folder.iterdir())))
            written.append(_capture(env, out / f"batch{name}-{width}x{height}.png"))
            _xdotool(env, "key", "--window", window, "ctrl+q")
            app.wait(20)
        finally:
            if app.poll() is None:
                app.terminate()
                app.wait(10)
    return written


def shoot_augment(out: Path, size: tuple[int, int], image: Path, wait: float) -> list[Path]:
    """The Augment tab's three pages, driven in this process on a virtual display.

    The tab's work needs clicks in a grid, which xdotool cannot aim without coordinates; so the
    window is made here and its buttons are invoked as a test would, then the screen is captured
    as for the other shots.
    """
    import tkinter as tk

    from retina_desktop.gui.main_window import MainWindow
    from retina_desktop.imaging.decode import load_image
    from retina_desktop.services.classify import default_classifier
    from retina_desktop.services.report import display_name

    width, height = size
    written = []
    with virtual_display(width, height) as display:
        os.environ["DISPLAY"] = display
        env = {**os.environ}
        root = tk.Tk()
        app = MainWindow(root, default_classifier())
        # No window manager: fill the screen as a maximised window would. The menu bar lies
        # above the geometry's client area, so that area is the screen less the menu bar.
        root.geometry(f"{width}x{height}+0+0")
        root.update()
        root.geometry(f"{width}x{height - root.winfo_rooty()}+0+0")
        try:
            tab = app.augment
            app.notebook.select(tab)
            synthetic = tab.synthetic
            pump(root, lambda: synthetic.generator is not None and app.model_ready, wait)
            synthetic.class_var.set("glaucoma")
            synthetic.count_var.set("32")
            synthetic.seed_var.set("7")
            synthetic.judge_var.set(True)
            synthetic.generate_button.invoke()
            pump(root, lambda: synthetic.judged is not None, wait)
            synthetic.grid_view.toggle(3)
            root.update()
            written.append(_capture(env, out / f"augment-synthetic-{width}x{height}.png"))

            oct_generators = [i for i, g in enumerate(synthetic.generators) if g.modality == "oct"]
            if oct_generators:  # the OCT GAN, its B-scans at their own proportions
                synthetic.generator_box.current(oct_generators[0])
                synthetic._generator_chosen()
                pump(root, lambda: synthetic.generator is not None
                      and synthetic.generator.info.modality == "oct", wait)
                synthetic.class_var.set(display_name(synthetic.generator.info.classes[0]))
                synthetic.count_var.set("16")
                synthetic.generate_button.invoke()
                pump(root, lambda: synthetic.shown_info is not None and synthetic.shown_info.modality == "oct", wait)
                root.update()
                written.append(_capture(env, out / f"augment-synthetic-oct-{width}x{height}.png"))

            page = tab.augmentation
            tab.pages.select(page)
            page.set_picture(load_image(image).rgb, image.name)
            pump(root, lambda: len(page.grid_view.images) == 16, wait)
            time.sleep(0.5)
            root.update()
            written.append(_capture(env, out / f"augment-augmentation-{width}x{height}.png"))

            vessels = tab.vessels
            tab.pages.select(vessels)
            pump(root, lambda: vessels.generator is not None, wait)
            vessels.random_mask()
            vessels.generate_button.invoke()
            pump(root, lambda: vessels.result is not None, wait)
            root.update()
            written.append(_capture(env, out / f"augment-vessels-{width}x{height}.png"))
        finally:
            app.quit()
            os.environ.pop("DISPLAY", None)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the PNG files")
    parser.add_argument("--image", help="image to analyse (default: a real fundus photograph)")
    parser.add_argument("--folder", help="folder for the Batch tab (default: a few real images)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for the first result")
    parser.add_argument("--augment-only", action="store_true", help="only the Augment tab's pages")
    parser.add_argument("--tag", default="", help="only the Analyse and Batch shots at the first size, "
                        "named analyse-TAG-WxH.png and batch-TAG-WxH.png (e.g. an unfamiliar image)")
    args = parser.parse_args(argv)
    for tool in ("Xvfb", "xdotool", "import"):
        if shutil.which(tool) is None:
            print(f"error: {tool} is not installed", file=sys.stderr)
            return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = Path(args.image) if args.image else default_image()
    with tempfile.TemporaryDirectory(prefix="retina-shots-") as tmp:
        folder = Path(args.folder) if args.folder else demo_folder(Path(tmp) / "clinic-folder")
        model = str(Path(args.model).resolve()) if args.model else None
        if args.tag:
            shoot(out, SIZES[0], image.resolve(), folder.resolve(), model, args.wait, args.tag)
            return 0
        for size in SIZES:
            if not args.augment_only:
                shoot(out, size, image.resolve(), folder.resolve(), model, args.wait)
        shoot_augment(out, SIZES[0], image.resolve(), args.wait)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
