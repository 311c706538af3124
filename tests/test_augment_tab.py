"""The Augment tab on a virtual display: synthetic grids, augmentation previews, labels, export.

A real (tiny, untrained) generator stands in for the shipped one; its compiled copy runs on
the augment worker, and every test checks that the Tk thread never ran generator or model code.
"""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest

from retina_desktop.services import synthetic_samples as synthesis
from tests.conftest import fundus_like
from tests.gui_support import FakeClassifier, pump

tk = pytest.importorskip("tkinter")


def _ship_and_record(monkeypatch, generator_path, page_module: str) -> list[str]:
    """Ship `generator_path` to one page, and record which threads run generators."""
    info = synthesis.read_generator_info(generator_path)
    monkeypatch.setattr(f"retina_desktop.gui.{page_module}.shipped_generators", lambda: [info])
    threads: list[str] = []
    original = synthesis.Generator._run

    def recording_run(self, feeds):
        threads.append(threading.current_thread().name)
        return original(self, feeds)

    monkeypatch.setattr(synthesis.Generator, "_run", recording_run)
    return threads


@pytest.fixture
def generator_calls(tiny_generator, monkeypatch):
    return _ship_and_record(monkeypatch, tiny_generator, "synthetic_panel")


def _grid(panel) -> np.ndarray:
    return np.stack([np.asarray(image) for image in panel.grid_view.images])


def _generate(app, panel, label: str, seed: int, count: str = "8") -> np.ndarray:
    panel.class_var.set(label)
    panel.seed_var.set(str(seed))
    panel.count_var.set(count)
    token = panel.requests.latest
    panel.generate_button.invoke()
    pump(app.root, lambda: panel.shown_token > token and "disabled" not in panel.generate_button.state())
    return _grid(panel)


def test_generate_is_seeded_follows_the_class_and_runs_off_the_tk_thread(make_app, generator_calls) -> None:
    app = make_app(FakeClassifier())
    app.notebook.select(app.augment)
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    assert panel.class_box.cget("values")  # the generator's classes are offered
    first = _generate(app, panel, "glaucoma", 3)
    assert first.shape == (8, 16, 16, 3) and len(panel.grid_view.captions) == 8
    again = _generate(app, panel, "glaucoma", 3)
    other_class = _generate(app, panel, "normal", 3)
    assert np.array_equal(first, again)
    assert np.abs(first.astype(int) - other_class).mean() > 1.0
    many = _generate(app, panel, "glaucoma", 3, count="64")
    assert len(many) == 64 and np.array_equal(many[:8], first)  # image i of a seed is fixed
    assert int(panel.progress.cget("value")) == 64
    assert generator_calls and "MainThread" not in generator_calls


def test_vary_and_interpolate_act_on_the_selection(make_app, generator_calls) -> None:
    app = make_app(FakeClassifier())
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    first = _generate(app, panel, "cataract", 1)
    panel.grid_view.toggle(2)
    token = panel.requests.latest
    panel.vary_button.invoke()
    pump(app.root, lambda: panel.requests.latest > token and len(panel.grid_view.images) >= 8
         and panel.what_var.get().startswith("variations"))
    assert np.array_equal(_grid(panel)[0], first[2])  # the original comes first
    panel.grid_view.toggle(0)
    panel.target_var.set("normal")
    token = panel.requests.latest
    panel.interpolate_button.invoke()
    pump(app.root, lambda: panel.requests.latest > token and panel.what_var.get().startswith("interpolation"))
    strip = _grid(panel)
    assert len(strip) == 8 and np.abs(strip[0].astype(int) - first[2]).max() <= 1
    assert "MainThread" not in generator_calls


def test_a_stretched_generator_is_shown_at_its_scans_proportions(make_app, tiny_generator, tmp_path,
                                                                   monkeypatch) -> None:
    """An OCT generator learned B-scans stretched into squares: the grid and the large view
    show them as wide as the scans were, export keeps what the generator made, and a fundus
    model does not label them."""
    import json

    from retina_desktop.gui.image_grid import LargeView

    folder = tmp_path / "oct"
    folder.mkdir()
    (folder / "generator.keras").write_bytes(tiny_generator.read_bytes())
    sidecar = json.loads(tiny_generator.with_suffix(".json").read_text()) | {"display_aspect": 2.5, "modality": "oct"}
    (folder / "generator.json").write_text(json.dumps(sidecar))
    _ship_and_record(monkeypatch, folder / "generator.keras", "synthetic_panel")
    app = make_app(FakeClassifier())
    app.notebook.select(app.augment)
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    _generate(app, panel, "glaucoma", 1, count="4")
    assert [image.size for image in panel.grid_view.images] == [(40, 16)] * 4
    photo = panel.grid_view._photos[0]
    assert photo.width() > 2 * photo.height()
    panel.open_large(0)
    large = next(w for w in panel.winfo_children() if isinstance(w, LargeView))
    assert large.photo.width() == 512 and large.photo.height() == 512 * 16 // 40
    large.destroy()
    assert panel.images[0].pixels.shape == (16, 16, 3)  # what export writes: the generator's own
    panel.judge_var.set(True)
    panel._judge_toggled()  # the open (fundus) model is not asked about OCT images
    assert "reads fundus images and these are OCT: open an OCT model" in panel.note.cget("text")
    assert panel.judged is None


def test_classifier_labels_each_synthetic_image(make_app, real_classifier, generator_calls) -> None:
    app = make_app(real_classifier)
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None and app.model_ready)
    _generate(app, panel, "glaucoma", 0, count="4")
    panel.judge_var.set(True)
    panel._judge_toggled()
    pump(app.root, lambda: panel.judged is not None)
    assert all("model:" in caption for caption in panel.grid_view.captions)
    assert "of 4 images given the class" in panel.note.cget("text")
    assert "MainThread" not in real_classifier.model_threads


def test_export_writes_images_and_manifest_and_asks_before_replacing(make_app, generator_calls, tmp_path,
                                                                     monkeypatch) -> None:
    app = make_app(FakeClassifier())
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    _generate(app, panel, "glaucoma", 5, count="4")
    panel.grid_view.toggle(1)
    panel.grid_view.toggle(3)
    monkeypatch.setattr("tkinter.filedialog.askdirectory", lambda **kw: str(tmp_path))
    panel.export_selected_button.invoke()
    rows = list(csv.DictReader(open(tmp_path / "manifest.csv", encoding="utf-8")))
    assert [r["latent_index"] for r in rows] == ["1", "3"] and rows[0]["seed"] == "5"
    assert (tmp_path / rows[0]["file"]).is_file()
    asked = []
    monkeypatch.setattr("tkinter.messagebox.askyesno", lambda *a, **kw: asked.append(a) or False)
    panel.export_all_button.invoke()
    assert asked and len(list(csv.DictReader(open(tmp_path / "manifest.csv", encoding="utf-8")))) == 2
    monkeypatch.setattr("tkinter.messagebox.askyesno", lambda *a, **kw: True)
    panel.export_all_button.invoke()
    assert len(list(csv.DictReader(open(tmp_path / "manifest.csv", encoding="utf-8")))) == 4


def test_export_starts_in_a_synthetic_folder_of_its_own_and_can_make_a_new_one(make_app, generator_calls, tmp_path,
                                                                               monkeypatch) -> None:
    monkeypatch.setattr("platformdirs.user_documents_dir", lambda: str(tmp_path / "Documents"))
    app = make_app(FakeClassifier())
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    _generate(app, panel, "glaucoma", 5, count="4")
    asked = []
    new_folder = tmp_path / "new" / "synthetic run"
    monkeypatch.setattr("tkinter.filedialog.askdirectory", lambda **kw: asked.append(kw) or str(new_folder))
    panel.export_all_button.invoke()
    default = tmp_path / "Documents" / "Retina Desktop synthetic"
    assert asked[0]["initialdir"] == str(default) and default.is_dir()  # never the last batch folder
    assert asked[0]["mustexist"] is False  # a folder typed that does not exist is made
    files = sorted(p.name for p in new_folder.iterdir())
    assert files[0] == "manifest.csv" and len(files) == 5 and all(n.startswith("synthetic_") for n in files[1:])
    monkeypatch.setattr("tkinter.messagebox.askyesno", lambda *a, **kw: True)
    panel.export_all_button.invoke()
    assert asked[1]["initialdir"] == str(new_folder)  # then where the last synthetic export went


def test_without_a_generator_the_tab_says_what_to_do(make_app, monkeypatch) -> None:
    monkeypatch.setattr("retina_desktop.gui.synthetic_panel.shipped_generators", lambda: [])
    app = make_app(FakeClassifier())
    panel = app.augment.synthetic
    pump(app.root, lambda: True, timeout=0.5)
    assert "No generator is installed" in panel.grid_view.placeholder
    assert "disabled" in panel.generate_button.state()


def test_augmentation_controls_change_the_preview(make_app, tmp_path, monkeypatch) -> None:
    app = make_app(FakeClassifier())
    page = app.augment.augmentation
    pump(app.root, lambda: app.model_ready)
    image = tmp_path / "eye.png"
    fundus_like(120, seed=4).save(image)
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(image))
    page.browse()
    pump(app.root, lambda: len(page.grid_view.images) == 16)
    before = _grid(page)
    assert before[0].shape == (32, 32, 3)  # fitted to the (fake) model's input
    assert page.variables["rotation_degrees"].get() == 15.0  # training's fundus default
    token = page.requests.latest
    page.variables["rotation_degrees"].set(0.0)
    page.variables["brightness"].set(0.5)
    page.changed()
    pump(app.root, lambda: page.requests.latest > token and not np.array_equal(_grid(page), before))
    after = _grid(page)
    assert np.array_equal(after[0], before[0])  # the unchanged image stays first
    assert all("rot" not in caption for caption in page.grid_view.captions[1:])
    token = page.requests.latest
    page.random_button.invoke()
    pump(app.root, lambda: page.requests.latest > token and not np.array_equal(_grid(page), after))


@pytest.fixture
def vessel_generator_calls(tiny_vessel_generator, monkeypatch):
    return _ship_and_record(monkeypatch, tiny_vessel_generator, "vessel_panel")


def test_vessel_mask_page_draws_generates_by_style_and_exports(make_app, vessel_generator_calls, tmp_path,
                                                               monkeypatch) -> None:
    from PIL import Image

    app = make_app(FakeClassifier())
    app.notebook.select(app.augment)
    app.augment.pages.select(app.augment.vessels)
    page = app.augment.vessels
    pump(app.root, lambda: page.generator is not None)
    assert list(page.style_box.cget("values")) == ["drive", "chase"]
    page.generate_button.invoke()  # an empty mask is refused with a note, not a crash
    assert "empty" in page.note.cget("text")
    # A mask file, as a user would open one (white vessels on black).
    mask = np.zeros((100, 100), np.uint8)
    mask[50, 10:90] = 255
    mask[10:90, 30] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    monkeypatch.setattr("tkinter.filedialog.askopenfilename", lambda **kw: str(tmp_path / "mask.png"))
    page.browse_mask()
    pump(app.root, lambda: page.mask_source == "mask.png")
    assert page.vessels.mean() > 0.01

    def made(style):
        token = page.requests.latest
        page.style_var.set(style)
        page.generate_button.invoke()
        pump(app.root, lambda: page.shown_token > token)
        return page.result.copy()

    drive, chase = made("drive"), made("chase")
    assert drive.shape == (32, 32, 3) and np.abs(drive.astype(int) - chase).mean() > 0.5
    # Drawing changes the mask, and so the result.
    page.update_idletasks()
    canvas = page.mask_panel.canvas
    w, h = canvas.winfo_width(), canvas.winfo_height()
    before = page.vessels.sum()
    page._pen_down(type("E", (), {"x": w // 2 - 40, "y": h // 2 + 30})())
    page._pen_moved(type("E", (), {"x": w // 2 + 40, "y": h // 2 + 30})())
    assert page.vessels.sum() > before and page.mask_source.endswith("(edited)")
    assert not np.array_equal(made("drive"), drive)
    page.random_mask()
    assert 0.02 < page.vessels.mean() < 0.2
    monkeypatch.setattr("tkinter.filedialog.askdirectory", lambda **kw: str(tmp_path / "out"))
    page.export_button.invoke()
    rows = list(csv.DictReader(open(tmp_path / "out" / "manifest.csv", encoding="utf-8")))
    assert [r["label"] for r in rows] == ["vessel_mask", "fundus_drive"]
    assert all((tmp_path / "out" / r["file"]).is_file() for r in rows)
    assert vessel_generator_calls and "MainThread" not in vessel_generator_calls


def test_the_shipped_fundus_generator_fills_a_grid(make_app) -> None:
    """The generator the app ships (models/generator.keras, compiled), not a stand-in."""
    from retina_desktop.core.paths import models_dir

    if not (models_dir() / "generator.keras").exists():
        pytest.skip("no shipped generator in models/ (a models-only checkout)")
    app = make_app(FakeClassifier())
    panel = app.augment.synthetic
    pump(app.root, lambda: panel.generator is not None)
    assert panel.generator.info.path == models_dir() / "generator.keras"
    assert panel.generator.compiled == models_dir() / "generator.tflite"  # shipped compiled, up to date
    first = _generate(app, panel, "glaucoma", 2)
    again = _generate(app, panel, "glaucoma", 2)
    cataract = _generate(app, panel, "cataract", 2)
    size = panel.generator.info.size  # from the shipped sidecar
    assert first.shape == (8, size, size, 3) and np.array_equal(first, again)
    assert np.abs(first.astype(int) - cataract).mean() > 1.0
    assert first.std() > 10  # pictures, not a flat colour


def test_a_long_caption_gets_room_under_its_picture_instead_of_running_into_the_next_row(display) -> None:
    from PIL import Image

    from retina_desktop.gui.image_grid import ImageGrid

    root = tk.Tk()
    try:
        grid = ImageGrid(root)
        grid.pack(fill="both", expand=True)
        root.geometry("860x500")
        long = "glaucoma s7 #0\nmodel: diabetic retinopathy 55% (unsure)"
        grid.show([Image.new("RGB", (64, 64), (90, 40, 20)) for _ in range(32)], [long] * 32)
        pump(root, lambda: grid.canvas.winfo_width() > 200 and grid._cells)
        root.update()
        captions = [item for item in grid.canvas.find_all() if grid.canvas.type(item) == "text"]
        _, caption_top, _, caption_bottom = grid.canvas.bbox(captions[0])
        columns = sum(1 for _, y, _ in grid._cells if y == grid._cells[0][1])
        next_row_top = grid._cells[columns][1]
        assert caption_bottom - caption_top > 46  # it did wrap long
        assert caption_bottom < next_row_top
    finally:
        root.destroy()
