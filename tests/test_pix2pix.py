"""pix2pix (vessel mask -> fundus photograph): the shared input contract, pairing, metrics,
augmentation, exact resume and the three verbs, on tiny images and a few steps."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retina_desktop.core.errors import ImageError, ModelError, UserError
from retina_desktop.services.vessel_synthesis import (
    SynthesisSpec,
    check_input,
    default_fov,
    estimate_fov,
    generator_input,
    load_mask,
    resize_mask,
    to_uint8,
)
from training.epochs import TrainState
from training.pix2pix.data import even_out_colour, find_pairs, load_pairs, style_of
from training.pix2pix.evaluate import coarse_only_figures, exposure_matched_figures, image_figures, mse, psnr, ssim
from training.pix2pix.trainer import Pix2PixConfig, build_patch_discriminator, build_unet_generator, train_pix2pix

TINY = Pix2PixConfig(size=32, styles=("drive", "chase"), width=4, levels=3, max_channels=16, d_width=4,
                     d_layers=2, batch_size=4, epochs=3, grid_rows=2)


def _disc(h: int, w: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :h if h == w else w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= (radius * min(h, w)) ** 2


def _fake_eye(seed: int, size: int = 48, tint=(190, 90, 40)):
    """(photo uint8, vessels bool, fov bool): a tinted disc with darker random 'vessels'."""
    rng = np.random.default_rng(seed)
    fov = _disc(size, size, 0.45)
    vessels = np.zeros((size, size), bool)
    for _ in range(3):
        vessels[rng.integers(4, size - 4), 4:-4] = True
        vessels[4:-4, rng.integers(4, size - 4)] = True
    vessels &= fov
    photo = np.zeros((size, size, 3), np.float64)
    photo[fov] = tint
    photo[vessels] *= 0.6
    photo += rng.normal(0, 4, photo.shape) * fov[..., None]
    return np.clip(photo, 0, 255).astype(np.uint8), vessels, fov


def _pairs_folder(root: Path, n: int, *, fov: bool = True, seed: int = 0, tint=(190, 90, 40)) -> Path:
    for sub in ("image", "vessels") + (("fov",) if fov else ()):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        photo, vessels, disc = _fake_eye(seed + i, tint=tint)
        Image.fromarray(photo).save(root / "image" / f"{i:02d}.png")
        Image.fromarray(vessels.astype(np.uint8) * 255).save(root / "vessels" / f"{i:02d}.png")
        if fov:
            Image.fromarray(disc.astype(np.uint8) * 255).save(root / "fov" / f"{i:02d}.png")
    return root


def _verb(module, argv: list[str]) -> int:
    """A command module (training/commands/) run as `training/cli.py` runs it: its own parser, UserError -> 1."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    try:
        return module.run(parser.parse_args(argv))
    except UserError as err:
        print(f"error: {err}")
        return 1


# --- the shared input contract -------------------------------------------------------------

def test_generator_input_channel_layout():
    vessels = np.zeros((40, 40), bool)
    vessels[10:30, 20] = True
    fov = _disc(40, 40, 0.45)
    x = generator_input(vessels, fov, "chase", ["drive", "chase", "hrf"], 20)
    assert x.shape == (1, 20, 20, 5) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert np.array_equal(x[0, ..., 0] > 0, resize_mask(vessels, 20))
    assert x[0, 5:15, 10, 0].all() and x[0, :, :5, 0].sum() == 0  # the vessel, where it was
    assert np.array_equal(x[0, ..., 1] > 0, resize_mask(fov, 20, keep_thin=False))
    assert (x[0, ..., 3] == 1).all() and (x[0, ..., 2] == 0).all() and (x[0, ..., 4] == 0).all()
    without = generator_input(vessels, None, "drive", ["drive", "chase", "hrf"], 20)
    assert np.array_equal(without[0, ..., 1] > 0, default_fov(20)) and (without[0, ..., 2] == 1).all()
    check_input(x, 20, ["drive", "chase", "hrf"])


def test_wrong_shapes_and_styles_are_refused():
    vessels = np.zeros((40, 40), bool)
    with pytest.raises(ValueError, match="2-D"):
        generator_input(np.zeros((40, 40, 3), bool), None, "drive", ["drive"], 16)
    with pytest.raises(ValueError, match="must match"):
        generator_input(vessels, np.ones((40, 30), bool), "drive", ["drive"], 16)
    with pytest.raises(ModelError, match="'hrf' is not one the generator learned"):
        generator_input(vessels, None, "hrf", ["drive", "chase"], 16)
    with pytest.raises(ValueError, match=r"\(n, 16, 16, 4\)"):
        check_input(np.zeros((1, 16, 16, 3), np.float32), 16, ["drive", "chase"])
    sources = np.zeros((4, 32, 32, 3), np.float32)  # one channel short for two styles
    with pytest.raises(ValueError, match="expected"):
        train_pix2pix(TINY, sources, np.zeros((4, 32, 32, 3), np.uint8), Path("unused"))


def test_load_mask_reads_any_mode_and_names_bad_files(tmp_path):
    vessels = np.zeros((30, 30), bool)
    vessels[5:25, 12:14] = True
    for mode in ("1", "L", "RGB", "I;16"):
        path = tmp_path / f"mask_{mode.replace(';', '')}.png"
        top = 65535 if mode == "I;16" else 255
        Image.fromarray((vessels * top).astype(np.uint16 if mode == "I;16" else np.uint8)).convert(mode).save(path)
        assert np.array_equal(load_mask(path), vessels), mode
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 30, 3)).astype(np.uint8)).save(photo)
    with pytest.raises(ImageError, match=r'photo\.png" is not a two-level vessel mask'):
        load_mask(photo)
    inverted = tmp_path / "inverted.png"
    Image.fromarray(((~vessels) * 255).astype(np.uint8)).save(inverted)
    with pytest.raises(ImageError, match=r"inverted\.png.*inverted\?"):
        load_mask(inverted)
    with pytest.raises(ImageError, match="File not found"):
        load_mask(tmp_path / "missing.png")


def test_resizing_keeps_one_pixel_vessels():
    from scipy import ndimage

    h, w = 584, 565  # DRIVE's size, reduced 9x to 64
    canvas = Image.new("L", (w, h), 0)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    draw.line([(40, 30), (520, 560)], fill=255, width=1)  # a one-pixel diagonal
    draw.line([(300, 20), (301, 570)], fill=255, width=1)  # a one-pixel near-vertical
    mask = np.asarray(canvas) > 0
    small = resize_mask(mask, 64)
    _, pieces = ndimage.label(small, structure=np.ones((3, 3)))
    assert pieces == 1  # both lines there, unbroken (they cross)
    rows = np.nonzero(small.any(axis=1))[0]
    assert rows.min() <= 4 and rows.max() >= 60 and np.all(np.diff(rows) == 1)
    assert small.sum() <= 4 * 64  # not smeared: about two one-pixel lines' worth at 64 x 64
    # A plain one-half threshold loses such lines: the reason for the lower one.
    assert resize_mask(mask, 64, keep_thin=False).sum() < small.sum() / 4


def test_estimate_fov_finds_a_disc_with_dark_vessels_in_it():
    rng = np.random.default_rng(3)
    fov = _disc(120, 130, 0.46)
    photo = np.zeros((120, 130, 3), np.float64)
    photo[fov] = (150, 60, 20)
    photo[:, 60:63] *= 0.2  # a dark vessel crossing the disc
    photo[fov & (np.arange(130)[None, :] < 25)] *= 0.5  # a dim rim on one side
    photo += rng.normal(0, 5, photo.shape)
    found = estimate_fov(np.clip(photo, 0, 255).astype(np.uint8))
    iou = (found & fov).sum() / (found | fov).sum()
    assert iou > 0.95 and found[60, 61]  # the vessel is inside, not a hole


def test_to_uint8_and_sidecar_spec(tmp_path):
    assert to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
    model = tmp_path / "generator.keras"
    with pytest.raises(ModelError, match="has no sidecar"):
        SynthesisSpec.read(model)
    model.with_suffix(".json").write_text(json.dumps({"kind": "conditional generator", "size": 32}))
    with pytest.raises(ModelError, match="does not describe"):
        SynthesisSpec.read(model)
    model.with_suffix(".json").write_text(json.dumps({"kind": "vessel-to-fundus pix2pix", "size": 32,
                                                      "styles": ["drive", "chase"]}))
    assert SynthesisSpec.read(model) == SynthesisSpec(32, ("drive", "chase"))


# --- pairing -------------------------------------------------------------------------------

def test_pairs_are_matched_by_file_name(tmp_path):
    root = _pairs_folder(tmp_path / "drive" / "training", 3)
    (root / "vessels" / "01.png").rename(root / "vessels" / "01.gif")  # another extension still pairs
    Image.open(root / "vessels" / "00.png").save(root / "vessels" / "01.gif", format="GIF")
    (root / "image" / "notes.txt").write_text("not an image")
    folder = find_pairs(root)
    assert folder.style == "drive" and style_of(tmp_path / "chase") == "chase"
    assert [(p.name, p.image.name, p.vessels.name, p.fov.name) for p in folder.pairs] == [
        ("00", "00.png", "00.png", "00.png"),
        ("01", "01.png", "01.gif", "01.png"),
        ("02", "02.png", "02.png", "02.png"),
    ]
    assert find_pairs(root, "mine").style == "mine"

    (root / "image" / "03.png").write_bytes((root / "image" / "00.png").read_bytes())
    with pytest.raises(UserError, match=r'image".*no vessel mask in vessels/ for 03'):
        find_pairs(root)
    (root / "image" / "03.png").unlink()
    (root / "vessels" / "04.png").write_bytes((root / "vessels" / "00.png").read_bytes())
    with pytest.raises(UserError, match="no photograph in image/ for 04"):
        find_pairs(root)
    (root / "vessels" / "04.png").unlink()
    (root / "fov" / "02.png").unlink()
    with pytest.raises(UserError, match="no field-of-view mask for 02"):
        find_pairs(root)
    (tmp_path / "other" / "image").mkdir(parents=True)
    with pytest.raises(UserError, match=r'other" has no vessels/ folder'):
        find_pairs(tmp_path / "other")


def test_load_pairs_estimates_missing_fovs_and_sets_styles(tmp_path):
    drive = find_pairs(_pairs_folder(tmp_path / "drive", 2))
    chase = find_pairs(_pairs_folder(tmp_path / "chase", 2, fov=False, seed=10))
    sources, targets, fovs = load_pairs([drive, chase], 32, ["drive", "chase"], progress=False)
    assert sources.shape == (4, 32, 32, 4) and targets.shape == (4, 32, 32, 3) and targets.dtype == np.uint8
    assert sources[:2, ..., 2].all() and not sources[:2, ..., 3].any() and sources[2:, ..., 3].all()
    truth = resize_mask(_disc(48, 48, 0.45), 32, keep_thin=False)
    for estimated in fovs[2:]:
        assert (estimated & truth).sum() / (estimated | truth).sum() > 0.9


def test_each_photograph_is_evened_out_to_its_styles_mean_colour_inside_the_field_of_view():
    photos, fovs = [], []
    for seed, tint in ((0, (150, 80, 40)), (1, (210, 100, 50)), (2, (100, 40, 10)), (3, (140, 60, 30))):
        photo, _, fov = _fake_eye(seed, tint=tint)
        photos.append(photo)
        fovs.append(fov)
    photos, fovs = np.stack(photos), np.stack(fovs)
    styles = np.array([0, 0, 1, 1])  # a dim and a bright photograph of style 0, two of style 1
    evened, colours = even_out_colour(photos, fovs, styles)
    assert colours[0] == pytest.approx(np.mean([photos[i][fovs[i]].mean(0) for i in (0, 1)], axis=0))
    assert colours[1] == pytest.approx(np.mean([photos[i][fovs[i]].mean(0) for i in (2, 3)], axis=0))
    for i, style in enumerate(styles):
        assert evened[i][fovs[i]].mean(0) == pytest.approx(colours[style], abs=0.6)  # rounding to bytes
        assert np.array_equal(evened[i][~fovs[i]], photos[i][~fovs[i]])  # the surround is untouched
    # Within a photograph only the level moves: vessels stay as much darker as they were.
    centred = [p[f].astype(float) - p[f].mean(0) for p, f in zip((photos[0], evened[0]), (fovs[0], fovs[0]))]
    assert np.abs(centred[0] - centred[1]).max() <= 1.0
    assert photos.dtype == evened.dtype == np.uint8 and not np.array_equal(photos, evened)


# --- metrics -------------------------------------------------------------------------------

def test_metrics_on_known_images():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.8, (32, 32, 3))
    assert mse(a, a) == 0.0 and ssim(a, a) == pytest.approx(1.0) and psnr(mse(a, a)) == 100.0
    assert mse(a, a + 0.1) == pytest.approx(0.01) and psnr(0.01) == pytest.approx(20.0)
    # Two flat images: only SSIM's luminance term is left, (2 m1 m2 + C1) / (m1^2 + m2^2 + C1).
    c1 = 0.01**2
    flat = ssim(np.full((16, 16, 3), 0.5), np.full((16, 16, 3), 0.6))
    assert flat == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1), abs=1e-6)
    as_bytes = (a * 255).round().astype(np.uint8)
    assert mse(as_bytes, as_bytes.astype(np.float64) / 255.0) == 0.0  # uint8 is read as /255


def test_exposure_matching_removes_an_overall_colour_offset_and_nothing_else():
    real, _, fov = _fake_eye(3)
    brighter = real.astype(np.int16)
    brighter[fov] += np.array([40, 20, 10], np.int16)  # the same photograph, exposed brighter
    brighter = np.clip(brighter, 0, 255).astype(np.uint8)
    assert image_figures(brighter, real, fov)["psnr"] < 21
    matched = exposure_matched_figures(brighter, real, fov)
    assert matched["psnr"] > 45 and matched["ssim"] > 0.99
    # A wrong picture stays wrong: matching the mean colour cannot make it the photograph.
    other, _, _ = _fake_eye(4)
    assert exposure_matched_figures(other, real, fov)["psnr"] < 30


def test_coarse_only_keeps_uneven_lighting_and_forgives_fine_detail():
    real, vessels, fov = _fake_eye(3, size=64)
    # Vessels drawn one pixel off: a fine error, forgiven by the diagnostic.
    shifted = real.copy()
    shifted[fov] = np.roll(real, 1, axis=1)[fov]
    assert image_figures(shifted, real, fov)["psnr"] < 25
    assert coarse_only_figures(shifted, real, fov)["psnr"] > image_figures(shifted, real, fov)["psnr"] + 5
    # Light falling off from left to right: a coarse error, kept almost whole.
    lit = real.astype(np.float64) * np.linspace(1.3, 0.7, 64)[None, :, None]
    lit = np.clip(lit, 0, 255).astype(np.uint8)
    assert coarse_only_figures(lit, real, fov)["psnr"] == pytest.approx(image_figures(lit, real, fov)["psnr"], abs=1.5)
    assert coarse_only_figures(real, real, fov)["psnr"] == 100.0


def test_fov_metrics_ignore_pixels_outside():
    rng = np.random.default_rng(1)
    real = rng.uniform(0.2, 0.8, (40, 40, 3))
    fov = np.zeros((40, 40), bool)
    fov[10:30, 10:30] = True
    fake = real.copy()
    fake[:4] = 1.0  # wrong only far outside the field of view (beyond SSIM's 7 x 7 window)
    figures = image_figures(fake, real, fov)
    assert figures["mse"] == 0.0 and figures["psnr"] == 100.0 and figures["ssim"] == pytest.approx(1.0)
    assert figures["mse_whole"] > 0.01 and figures["ssim_whole"] < 0.95 and figures["psnr_whole"] < 20
    fake[15, 15] += 0.2  # one wrong pixel inside: 0.04 * 3 channels / (400 * 3) values
    assert mse(fake, real, fov) == pytest.approx(0.04 / 400)
    with pytest.raises(ValueError, match="empty"):
        mse(fake, real, np.zeros((40, 40), bool))


# --- the model -----------------------------------------------------------------------------

def test_builders_give_the_documented_shapes():
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(0)
    generator = build_unet_generator(32, 4, 4, levels=3, max_channels=16)
    x = np.zeros((2, 32, 32, 4), np.float32)
    x[..., 1] = 1
    x[1, ..., 3] = 1
    x[0, ..., 2] = 1
    y = np.asarray(generator(x, training=False))
    assert y.shape == (2, 32, 32, 3) and np.abs(y).max() <= 1.0
    assert np.abs(y[0] - y[1]).mean() > 1e-5  # the style planes reach the output
    logits = build_patch_discriminator(32, 4, 4, layers_strided=2)([x, y])
    assert tuple(logits.shape) == (2, 8, 8, 1)
    with pytest.raises(ValueError, match="multiple of 2 \\*\\* levels"):
        build_unet_generator(40, 4, levels=4)


def test_augmentation_moves_mask_and_photo_together():
    import tensorflow as tf

    from training.pix2pix.data import augment

    rng = np.random.default_rng(2)
    sources = np.zeros((6, 32, 32, 3), np.float32)
    sources[..., 0] = rng.random((6, 32, 32)) < 0.15
    sources[..., 1] = _disc(32, 32, 0.45)
    sources[..., 2] = 1.0
    photos = np.where(sources[..., :1] > 0, 1.0, -1.0).repeat(3, axis=-1).astype(np.float32)
    moved, moved_photos = augment(tf.constant(sources), tf.constant(photos), tf.constant([5, 6], tf.int64),
                                  hflip=True, vflip=True, rotate_degrees=15, zoom=0.1)
    moved, moved_photos = moved.numpy(), moved_photos.numpy()
    assert moved.shape == sources.shape and set(np.unique(moved[..., :2])) <= {0.0, 1.0}
    assert (moved[..., 2] == 1.0).all()  # style planes are not rotated into the corners
    assert not np.array_equal(moved[..., 0], sources[..., 0])
    agree = (moved[..., 0] > 0.5) == (moved_photos[..., 0] > -0.2)
    assert agree.mean() > 0.97  # the same transform for both
    again, _ = augment(tf.constant(sources), tf.constant(photos), tf.constant([5, 6], tf.int64),
                       hflip=True, vflip=True, rotate_degrees=15, zoom=0.1)
    assert np.array_equal(again.numpy(), moved)


def _tiny_data(n: int = 8):
    rng = np.random.default_rng(0)
    sources = np.zeros((n, 32, 32, 4), np.float32)
    sources[..., 0] = rng.random((n, 32, 32)) < 0.1
    sources[..., 1] = _disc(32, 32, 0.45)
    sources[: n // 2, ..., 2] = 1
    sources[n // 2 :, ..., 3] = 1
    targets = (rng.integers(0, 60, (n, 32, 32, 3)) + 150 * sources[..., 1:2] * (1 - 0.5 * sources[..., :1]))
    return sources, targets.astype(np.uint8)


@pytest.mark.slow
def test_resume_after_interruption_reaches_the_same_weights(tmp_path):
    sources, targets = _tiny_data()
    quiet = dict(verbose=0, log=lambda *_: None)
    straight, state = train_pix2pix(TINY, sources, targets, tmp_path / "a", **quiet)
    assert state.epoch == 3 and len(state.history) == 3
    train_pix2pix(TINY, sources, targets, tmp_path / "b", stop_after_epochs=1, **quiet)
    saved = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert saved["epoch"] == 1
    assert set(saved) == {f.name for f in dataclasses.fields(TrainState)}  # the format every trainer writes
    resumed, state = train_pix2pix(TINY, sources, targets, tmp_path / "b", resume=True, **quiet)
    assert state.epoch == 3 and int(resumed.step_counter.numpy()) == 6
    for name in ("generator", "discriminator"):
        for a, b in zip(getattr(straight, name).get_weights(), getattr(resumed, name).get_weights()):
            assert np.allclose(a, b, atol=1e-6), name
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    assert Image.open(tmp_path / "b" / "samples" / "epoch_0003.png").size == (3 * 32, 2 * 32)
    rows = list(csv.DictReader(open(tmp_path / "b" / "losses.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert {"d_loss", "l1", "g_adversarial", "seconds"} <= set(rows[0])
    assert len(list((tmp_path / "b" / "checkpoint").glob("*.weights.h5"))) == 1


# --- the verbs -----------------------------------------------------------------------------

def test_verbs_train_judge_and_generate(tmp_path, capsys):
    from training.commands import pix2pix as train_verb
    from training.commands import pix2pix_eval, pix2pix_generate

    drive = _pairs_folder(tmp_path / "data" / "drive" / "training", 4)
    chase = _pairs_folder(tmp_path / "data" / "chase", 4, fov=False, seed=20, tint=(120, 50, 10))
    test = _pairs_folder(tmp_path / "data" / "drive" / "test", 3, seed=40)
    out = tmp_path / "p2p"
    assert _verb(train_verb, ["--pairs", str(drive), str(chase), "--out", str(out), "--size", "32",
                              "--width", "4", "--levels", "3", "--d-width", "4", "--epochs", "2"]) == 0
    for name in ("generator.keras", "generator.json", "config.json", "losses.csv",
                 "samples/epoch_0002.png", "checkpoint/state.json"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "generator.json").read_text())
    assert sidecar["kind"] == "vessel-to-fundus" and sidecar["size"] == 32
    assert sidecar["styles"] == ["drive", "chase"] and len(sidecar["inputs"]["channels"]) == 4
    assert sidecar["provenance"]["train_pairs"] == 8 and sidecar["provenance"]["seconds_per_epoch"] > 0
    # Each style's photographs were evened out to that style's own mean colour: DRIVE's tint is
    # redder and brighter than the one these CHASE stand-ins were drawn with.
    assert sidecar["provenance"]["config"]["even_colour"] is True
    assert sidecar["style_colours"]["drive"][0] > sidecar["style_colours"]["chase"][0] + 40
    assert _verb(train_verb, ["--pairs", str(drive), "--out", str(out), "--size", "36", "--levels", "3",
                              "--epochs", "1"]) == 1  # 36 is not a multiple of 8

    capsys.readouterr()
    assert _verb(pix2pix_eval, ["--model", str(out / "generator.keras"), "--pairs", str(test),
                                "--out", str(tmp_path / "eval"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == ["n", "mse", "ssim", "psnr", "mse_whole", "ssim_whole", "psnr_whole"]
    assert printed["n"] == 3 and 0 < printed["mse"] < 1 and -1 <= printed["ssim"] <= 1
    assert printed["psnr"] == pytest.approx(np.mean([10 * np.log10(1 / float(r["mse"])) for r in
                                            csv.DictReader(open(tmp_path / "eval" / "pix2pix_eval.csv"))]))
    report = json.loads((tmp_path / "eval" / "pix2pix_eval.json").read_text())
    assert set(report["exposure_matched"]) == set(report["coarse_only"]) == {"mse", "ssim", "psnr", "how"}
    assert report["style"] == "drive" and len(report["per_image"]) == 3 and report["seconds_per_image"] > 0
    assert Image.open(tmp_path / "eval" / "source_generated_expected.png").size[0] == 3 * 32
    assert _verb(pix2pix_eval, ["--model", str(out / "generator.keras"), "--pairs", str(tmp_path / "data" / "chase"),
                                "--style", "hrf", "--json"]) == 1

    # CHASE's masks drawn in DRIVE's colours, and a single drawn mask with no field of view.
    as_drive, as_chase = tmp_path / "as_drive", tmp_path / "as_chase"
    model = str(out / "generator.keras")
    assert _verb(
        pix2pix_generate, ["--model", model, "--mask", str(chase), "--style", "drive", "--out", str(as_drive)]
    ) == 0
    assert _verb(pix2pix_generate, ["--model", model, "--mask", str(chase), "--style", "chase", "--out", str(as_chase),
                                    "--grid", str(tmp_path / "styles.png")]) == 0
    # One row per mask (4 here): mask | drive | chase | the mask's own photograph.
    assert Image.open(tmp_path / "styles.png").size == (4 * 32, 4 * 32)
    assert sorted(p.name for p in as_drive.iterdir()) == ["00.png", "01.png", "02.png", "03.png"]
    assert np.asarray(Image.open(as_drive / "00.png")).shape == (32, 32, 3)
    assert not np.array_equal(np.asarray(Image.open(as_drive / "00.png")), np.asarray(Image.open(as_chase / "00.png")))
    one = tmp_path / "drawn.png"
    assert _verb(pix2pix_generate, ["--model", model, "--mask", str(drive / "vessels" / "00.png"), "--style", "chase",
                                    "--out", str(one)]) == 0
    assert Image.open(one).size == (32, 32)
    assert _verb(pix2pix_generate, ["--model", model, "--mask", str(drive / "vessels" / "00.png"),
                                    "--out", str(one)]) == 1  # two styles: --style is needed


def test_random_vessel_trees_are_seeded_vessel_like_and_inside_the_field_of_view():
    from retina_desktop.services.vessel_synthesis import random_vessel_tree

    first, fov = random_vessel_tree(256, seed=4)
    again, _ = random_vessel_tree(256, seed=4)
    other, _ = random_vessel_tree(256, seed=5)
    assert first.shape == fov.shape == (256, 256) and first.dtype == bool
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert 0.02 < first.mean() < 0.15  # DRIVE's manual masks: about 0.09 of the image
    assert not (first & ~fov).any()
