"""Sampling the generators for the Augment tab: compiled copies, seeds, classes, export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras
from retina_desktop.services.synthetic_samples import (
    SyntheticImage,
    as_seen,
    export_images,
    interpolate,
    latents,
    nudge,
    open_generator,
    read_generator_info,
    sample,
    slerp,
    vary,
)


@pytest.fixture(scope="module")
def generator(tiny_generator):
    return open_generator(tiny_generator)


def test_compiled_generator_draws_what_keras_draws(generator, tiny_generator):
    keras = import_keras()
    model = keras.saving.load_model(tiny_generator, compile=False)
    z = latents(3, range(4), 8)
    labels = np.array([0, 1, 2, 3], np.int32)
    expected = np.clip(np.rint((np.asarray(model([z, labels], training=False)) + 1) * 127.5), 0, 255)
    got = generator.generate(z, np.eye(4, dtype=np.float32)[labels])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    assert generator.compiled.suffix == ".tflite" and generator.compiled.is_file()


def test_a_blend_of_classes_blends_every_per_class_lookup(generator, tiny_generator):
    """Half cataract, half DR must be what Keras draws with each class lookup (the input's and
    every batch norm's gain and bias) set to the mean of the two rows, not only the first one."""
    keras = import_keras()
    model = keras.saving.load_model(tiny_generator, compile=False)
    lookups = [layer for layer in model.layers if type(layer).__name__ == "Embedding"]
    assert len(lookups) > 1  # the label at the input and per-class batch-norm gains and biases
    for layer in lookups:
        (rows,) = layer.get_weights()
        rows[0] = (rows[0] + rows[1]) / 2
        layer.set_weights([rows])
    z = latents(4, range(3), 8)
    expected = np.clip(np.rint((np.asarray(model([z, np.zeros(3, np.int32)], training=False)) + 1) * 127.5), 0, 255)
    got = generator.generate(z, np.tile(np.array([[0.5, 0.5, 0.0, 0.0]], np.float32), (3, 1)))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_same_seed_same_images_and_the_class_matters(generator):
    first = sample(generator, "glaucoma", 6, seed=11)
    again = sample(generator, "glaucoma", 6, seed=11)
    other_seed = sample(generator, "glaucoma", 6, seed=12)
    other_class = sample(generator, "normal", 6, seed=11)
    pixels = lambda images: np.stack([i.pixels for i in images])  # noqa: E731
    assert pixels(first).shape == (6, 16, 16, 3) and pixels(first).dtype == np.uint8
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(other_seed))
    assert np.abs(pixels(first).astype(int) - pixels(other_class)).mean() > 1.0
    # Image i of a seed does not depend on how many were asked for (manifests can remake one).
    assert np.array_equal(sample(generator, "glaucoma", 2, seed=11, start=4)[1].pixels, first[5].pixels)


def test_interpolation_ends_at_the_two_samples_and_moves_gradually(generator):
    a = sample(generator, "cataract", 1, seed=1, start=2)[0]
    b = sample(generator, "normal", 1, seed=5, start=0)[0]
    strip = interpolate(generator, ("cataract", 1, 2), ("normal", 5, 0), steps=9)
    assert len(strip) == 9
    assert np.abs(strip[0].pixels.astype(int) - a.pixels).max() <= 1
    assert np.abs(strip[-1].pixels.astype(int) - b.pixels).max() <= 1
    steps = [np.abs(strip[k + 1].pixels.astype(int) - strip[k].pixels).mean() for k in range(8)]
    assert max(steps) < np.abs(a.pixels.astype(int) - b.pixels).mean()


def test_vary_stays_near_the_original(generator):
    base = sample(generator, "glaucoma", 1, seed=4, start=3)[0]
    near = vary(generator, base, 4, strength=0.1, seed=0)
    far = sample(generator, "glaucoma", 4, seed=99)
    distance = lambda images: np.mean([np.abs(i.pixels.astype(int) - base.pixels).mean() for i in images])  # noqa: E731
    assert 0 < distance(near) < distance(far)
    assert all(i.label == "glaucoma" for i in near)


def test_latent_helpers_keep_gaussian_scale():
    z = latents(0, [0], 512)[0]
    nudged = nudge(z, 0.5, seed=1, count=200)
    assert abs(np.linalg.norm(nudged, axis=1).mean() - np.sqrt(512)) < 1.5
    path = slerp(z, latents(1, [0], 512)[0], 5)
    assert np.allclose(path[0], z, atol=1e-5) and np.linalg.norm(path[2]) > 0.9 * np.sqrt(512)


def test_export_writes_pngs_and_manifest_and_never_overwrites_silently(generator, tiny_generator, tmp_path):
    from PIL import Image

    images = sample(generator, "glaucoma", 3, seed=7)
    images[0].predicted, images[0].confidence = "glaucoma", 0.81
    written = export_images(images, tmp_path / "out", tiny_generator)
    assert [p.name for p in written] == ["synthetic_glaucoma_s7_i00000.png", "synthetic_glaucoma_s7_i00001.png",
                                         "synthetic_glaucoma_s7_i00002.png", "manifest.csv"]
    assert np.array_equal(np.asarray(Image.open(written[1])), images[1].pixels)
    rows = list(csv.DictReader(open(written[-1], encoding="utf-8")))
    assert rows[0]["seed"] == "7" and rows[2]["latent_index"] == "2" and rows[0]["predicted"] == "glaucoma"
    assert rows[0]["generator"] == str(tiny_generator)
    before = written[0].stat().st_mtime_ns
    with pytest.raises(UserError, match="already exist"):
        export_images(images, tmp_path / "out", tiny_generator)
    assert written[0].stat().st_mtime_ns == before
    export_images(images[:1], tmp_path / "out", tiny_generator, overwrite=True)
    assert len(list(csv.DictReader(open(written[-1], encoding="utf-8")))) == 1
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporaries left behind


def test_every_export_is_named_and_marked_synthetic(generator, tiny_generator, tmp_path):
    """Grid, Vary, Interpolate and the vessel-mask page: "synthetic_" first in every name, and
    PNG text chunks naming generator, class, seed and latent, and saying it is not a patient's."""
    from PIL import Image

    sampled = sample(generator, "glaucoma", 2, seed=7, start=4)
    varied = vary(generator, sampled[0], 2, 0.3, seed=1)
    walked = interpolate(generator, ("glaucoma", 7, 4), ("normal", 7, 4), steps=3)
    pixels = np.zeros((8, 8, 3), np.uint8)
    vessel = [SyntheticImage(pixels, "vessel_mask", note="from vessel mask: drawn"),
              SyntheticImage(pixels, "fundus_drive", note="from vessel mask: drawn")]
    names = {}
    for what, images in (("grid", sampled), ("vary", varied), ("interpolate", walked), ("vessel", vessel)):
        written = export_images(images, tmp_path / what, tiny_generator)
        names[what] = [p.name for p in written[:-1]]
        assert all(name.startswith("synthetic_") for name in names[what]), names[what]
        for path, image in zip(written, images):
            chunks = Image.open(path).text
            assert chunks["Description"] == (
                f"synthetic image made by {tiny_generator.parent.name}/{tiny_generator.name}; not a patient image")
            assert chunks["Synthetic"] == "true" and chunks["Class"] == image.label
            assert chunks["Generator"] == str(tiny_generator)
            assert chunks["Seed"] == ("" if image.seed is None else str(image.seed))
            assert chunks["Latent index"] == ("" if image.latent_index is None else str(image.latent_index))
    assert names["grid"] == ["synthetic_glaucoma_s7_i00004.png", "synthetic_glaucoma_s7_i00005.png"]
    assert names["vary"] == ["synthetic_glaucoma_vary_001.png", "synthetic_glaucoma_vary_002.png"]
    assert names["interpolate"][0] == "synthetic_glaucoma_normal_0_interp_001.png"
    assert names["vessel"] == ["synthetic_vessel_mask_001.png", "synthetic_fundus_drive_002.png"]
    assert Image.open(tmp_path / "grid" / names["grid"][1]).text["Latent index"] == "5"
    assert "vary 0.30" in Image.open(tmp_path / "vary" / names["vary"][0]).text["Note"]


def test_the_default_export_folder_is_its_own(monkeypatch, tmp_path):
    from retina_desktop.services.synthetic_samples import default_export_folder

    monkeypatch.setattr("platformdirs.user_documents_dir", lambda: str(tmp_path / "Documents"))
    assert default_export_folder() == tmp_path / "Documents" / "Retina Desktop synthetic"


def test_export_of_blends_gets_distinct_names(tmp_path, tiny_generator):
    pixels = np.zeros((4, 4, 3), np.uint8)
    images = [SyntheticImage(pixels, "a→b 50%"), SyntheticImage(pixels, "a→b 50%")]
    names = [p.name for p in export_images(images, tmp_path, tiny_generator)]
    assert len(set(names)) == 3


def _copy_with_sidecar(tiny_generator, folder, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "generator.keras").write_bytes(tiny_generator.read_bytes())
    sidecar = json.loads(tiny_generator.with_suffix(".json").read_text()) | changes
    (folder / "generator.json").write_text(json.dumps(sidecar))
    return folder / "generator.keras"


def test_stretched_generators_are_shown_at_their_training_images_proportions(tmp_path, tiny_generator):
    image = SyntheticImage(np.zeros((16, 16, 3), np.uint8), "DME")
    assert as_seen(read_generator_info(tiny_generator), image).size == (16, 16)  # no display_aspect: square
    wide = read_generator_info(_copy_with_sidecar(tiny_generator, tmp_path / "oct", display_aspect=2.46))
    assert wide.display_aspect == 2.46 and as_seen(wide, image).size == (39, 16)
    with pytest.raises(UserError, match='"display_aspect" must be a number at least 0.1'):
        read_generator_info(_copy_with_sidecar(tiny_generator, tmp_path / "bad", display_aspect=0))


def test_generator_files_without_or_with_foreign_sidecars_are_refused(tmp_path, tiny_generator):
    lone = tmp_path / "generator.keras"
    lone.write_bytes(tiny_generator.read_bytes())
    with pytest.raises(UserError, match="no sidecar"):
        read_generator_info(lone)
    (tmp_path / "generator.json").write_text(json.dumps({"kind": "classifier"}))
    with pytest.raises(UserError, match="not a generator"):
        read_generator_info(lone)
    with pytest.raises(UserError, match="not found"):
        read_generator_info(tmp_path / "missing.keras")
    with pytest.raises(UserError, match="not a class"):
        sample(open_generator(tiny_generator), "myopia", 1, seed=0)
