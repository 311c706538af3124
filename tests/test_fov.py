"""Field-of-view standardisation on synthetic fundus-like discs with known geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retina_desktop.core.model_card import InputSpec
from retina_desktop.imaging.fov import (
    Circle,
    field_of_view_mask,
    find_field_of_view,
    retina_mask,
    standardise_field_of_view,
)
from retina_desktop.imaging.preprocessing import fit_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def disc_image(width: int, height: int, cx: float, cy: float, rx: float, ry: float | None = None,
               seed: int = 0, notch: bool = False) -> np.ndarray:
    """An orange textured disc (a fundus stand-in) on a noisy black frame."""
    rng = np.random.default_rng(seed)
    ry = rx if ry is None else ry
    ys, xs = np.mgrid[:height, :width]
    inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
    if notch:  # the small square a camera cuts into the rim, on the right
        inside &= ~((np.abs(ys - cy) < ry * 0.04) & (xs > cx + rx * 0.94))
    image = rng.integers(0, 8, (height, width, 3)).astype(np.uint8)  # JPEG-like noise on black
    retina = np.stack([150 + 60 * np.sin(xs / 7.0), 80 + 30 * np.cos(ys / 9.0), 40 + 0 * xs], axis=-1)
    image[inside] = np.clip(retina[inside] + rng.normal(0, 5, (inside.sum(), 3)), 0, 255).astype(np.uint8)
    return image


def test_a_full_circle_is_found_to_within_a_pixel():
    found = find_field_of_view(disc_image(300, 260, 152.0, 128.0, 110.0))
    assert found is not None
    assert abs(found.cx - 152) < 1 and abs(found.cy - 128) < 1 and abs(found.r - 110) < 1
    assert found.ry is None or abs(found.radius_y - found.r) < 1e-9


def test_a_circle_clipped_at_top_and_bottom_is_fitted_not_boxed():
    # EyePACS-style: the sensor cuts the disc; a bounding box would say radius 90, the rim says 120.
    found = find_field_of_view(disc_image(320, 180, 160.0, 90.0, 120.0, notch=True))
    assert found is not None
    assert abs(found.r - 120) < 1.5 and abs(found.cx - 160) < 1.5 and abs(found.cy - 90) < 1.5


def test_a_circle_wider_than_the_sensor_is_found_from_its_corners():
    found = find_field_of_view(disc_image(400, 400, 200.0, 200.0, 245.0))
    assert found is not None and abs(found.r - 245) < 2


def test_a_stretched_photograph_is_an_ellipse_and_comes_out_round():
    image = disc_image(224, 224, 111.5, 111.5, 70.0, 108.0)
    found = find_field_of_view(image)
    assert found is not None and abs(found.r - 70) < 1.5 and abs(found.radius_y - 108) < 1.5
    out = standardise_field_of_view(Image.fromarray(image), (128, 128))
    lit = out.max(axis=2) > 20
    rows, cols = np.nonzero(lit)
    assert abs((rows.max() - rows.min()) - (cols.max() - cols.min())) <= 3  # round again
    assert cols.max() - cols.min() > 120  # and filling the square's width


def test_an_ellipse_wilder_than_any_camera_makes_is_no_rim():
    # Axis ratio 2: no camera or resize stretches a fundus so far (real ones stay under 1.52).
    assert find_field_of_view(disc_image(300, 300, 149.5, 149.5, 60.0, 120.0)) is None


@pytest.mark.skipif(not (DATA / "fundus4").is_dir(), reason="../shared/data/fundus4 is absent (real images)")
@pytest.mark.parametrize("name", ["normal/eyepacs_10295_right.jpg", "normal/eyepacs_10343_left.jpg"])
def test_a_disc_that_fills_the_frame_is_not_squeezed_into_a_strip(name):
    """Only the four corners are dark: an ellipse fitted to them was 2-22 times taller than
    wide and squeezed the photograph into a strip; now it is passed through whole."""
    from retina_desktop.imaging.decode import load_image

    image = load_image(DATA / "fundus4" / name).rgb
    assert find_field_of_view(np.asarray(image)) is None
    assert standardise_field_of_view(image, (128, 128)) is None
    out = np.asarray(fit_image(image, InputSpec(128, 128, "fov", "none")))
    assert (out.max(axis=2) > 20).mean() > 0.8  # passed through as "pad": the whole disc


def test_framing_is_the_same_whatever_the_camera_did():
    """A disc in a square, the same disc clipped and offset, and enlarged: one framing out."""
    size = (96, 96)
    reference = disc_image(240, 240, 119.5, 119.5, 110.0, seed=1)
    clipped = reference[40:200, :]  # top and bottom cut off
    offset = np.zeros((300, 420, 3), np.uint8)
    offset[30:270, 150:390] = reference
    enlarged = np.asarray(Image.fromarray(reference).resize((720, 720), Image.Resampling.BICUBIC))
    outs = [standardise_field_of_view(Image.fromarray(a), size) for a in (reference, clipped, offset, enlarged)]
    lit = [o.max(axis=2) > 20 for o in outs]
    # The lit disc lands on the same pixels (clipped: only where the camera kept it).
    assert (lit[0] ^ lit[2]).mean() < 0.01 and (lit[0] ^ lit[3]).mean() < 0.01
    assert (lit[1] & ~lit[0]).mean() < 0.01
    assert 0.25 < lit[1].mean() < lit[0].mean()  # what the camera cut is padded black


def test_outside_the_circle_is_black_and_the_mask_matches():
    image = disc_image(200, 200, 100.0, 100.0, 80.0)
    image[:20, :20] = 255  # a bright label in the frame's corner
    out = standardise_field_of_view(Image.fromarray(image), (64, 64))
    mask = field_of_view_mask(64, 64, Circle(31.5, 31.5, 32.0))
    assert out[~mask].max() == 0
    assert out[mask].mean() > 50


@pytest.mark.parametrize("kind", ["photo", "flat", "black", "ring_fragment"])
def test_images_without_a_rim_pass_through_unharmed(kind):
    rng = np.random.default_rng(3)
    if kind == "photo":  # lit to every edge: nothing to fit
        image = rng.integers(40, 255, (120, 160, 3)).astype(np.uint8)
    elif kind == "flat":
        image = np.full((100, 100, 3), 128, np.uint8)
    elif kind == "black":
        image = np.zeros((100, 100, 3), np.uint8)
    else:  # a small bright corner: one short arc, not a field of view
        image = np.zeros((200, 200, 3), np.uint8)
        image[:30, :30] = 200
    assert find_field_of_view(image) is None
    assert standardise_field_of_view(Image.fromarray(image), (64, 64)) is None
    # The "fov" fit then keeps the whole picture, padded to a square, as the pad fit does.
    fov_fit = fit_image(Image.fromarray(image), InputSpec(64, 64, "fov", "none"))
    pad_fit = fit_image(Image.fromarray(image), InputSpec(64, 64, "pad", "none"))
    assert np.array_equal(fov_fit, pad_fit)


def test_fit_image_uses_the_field_of_view():
    image = disc_image(320, 180, 160.0, 90.0, 120.0)
    out = fit_image(Image.fromarray(image), InputSpec(96, 96, "fov", "none"))
    assert out.shape == (96, 96, 3)
    # The disc touches the left and right edges, and rows near the top are the padded cut.
    assert out[48, 1].max() > 20 and out[48, 94].max() > 20
    assert out[3, 48].max() == 0


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "fundus4").is_dir(), reason="../shared/data/fundus4 is absent (real images)")
def test_real_photographs_of_every_source_get_a_field_of_view():
    import csv

    with open(DATA / "fundus4" / "splits.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(0)
    for source in ("odir", "eyepacs", "small"):
        files = [r["file"] for r in rows if r["source"] == source]
        picked = rng.choice(files, 25, replace=False)
        found = [find_field_of_view(np.asarray(Image.open(DATA / "fundus4" / f).convert("RGB"))) for f in picked]
        assert sum(f is not None for f in found) >= 23, source


def test_the_retina_of_a_standardised_photograph_whose_corners_were_cut():
    """A disc wider than the sensor, standardised: no rim left to fit, but the retina is found."""
    image = disc_image(400, 400, 200.0, 200.0, 250.0)
    out = standardise_field_of_view(Image.fromarray(image), (96, 96))
    mask = retina_mask(out)
    assert mask is not None
    lit = out.max(axis=2) > 20
    assert (mask ^ lit).mean() < 0.03
    assert retina_mask(np.zeros((64, 64, 3), np.uint8)) is None


@pytest.mark.parametrize("shape", [(256, 256), (171, 256), (5, 7)])
def test_the_numpy_rank_filters_give_pillows_pixels(shape):
    """The rim finder's median and opening run in numpy (30x faster than Pillow's rank filters on
    its 256-px copy); the framing must not move, so each must equal Pillow's filter exactly,
    edges included."""
    from PIL import ImageFilter

    from retina_desktop.imaging.fov import median3, square_filter

    rng = np.random.default_rng(shape[0])
    values = rng.integers(0, 256, shape, dtype=np.uint8)
    expected = np.asarray(Image.fromarray(values).filter(ImageFilter.MedianFilter(3)))
    assert np.array_equal(median3(values), expected)
    mask = rng.random(shape) > 0.4
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    for size in (3, 5):
        assert np.array_equal(square_filter(mask, size, np.logical_and),
                              np.asarray(image.filter(ImageFilter.MinFilter(size))) > 0)
        assert np.array_equal(square_filter(mask, size, np.logical_or),
                              np.asarray(image.filter(ImageFilter.MaxFilter(size))) > 0)


def test_the_fast_percentile_and_median_are_numpys_to_the_bit():
    """The rim finder's threshold (a percentile from a histogram) and its fits' medians skip
    numpy's general-purpose code; a last-bit difference could move a threshold, so each must
    return numpy's float exactly."""
    from retina_desktop.imaging.fov import _median, percentile_uint8

    rng = np.random.default_rng(7)
    for _ in range(2000):
        shape = tuple(rng.integers(1, 60, 2))
        values = rng.integers(0, rng.integers(1, 257), shape).astype(np.uint8)
        assert percentile_uint8(values, 90) == np.percentile(values, 90)
        points = rng.normal(0, 3, rng.integers(1, 300))
        assert _median(points) == np.median(points)


def test_an_image_searched_once_is_not_searched_again(monkeypatch):
    """A photograph without a rim used to be searched three times per prediction (the fit and
    the checks each searched again when told "none")."""
    import retina_desktop.imaging.fov as fov
    from retina_desktop.imaging.checks import measure

    calls = []
    real = fov.find_field_of_view
    monkeypatch.setattr(fov, "find_field_of_view", lambda rgb: calls.append(1) or real(rgb))
    image = Image.fromarray(np.full((200, 200, 3), 120, np.uint8))  # no rim: fills the frame
    spec = InputSpec(96, 96, "fov", "none")
    fit_image(image, spec, None)
    measure(image, "fov", None)
    assert calls == []
    fit_image(image, spec)  # not searched yet: searches
    assert calls == [1]


@pytest.mark.parametrize("sides", ["top-bottom", "all"])
def test_a_clipped_disc_placed_inside_a_larger_frame_is_found_from_its_arcs(sides):
    """A photograph whose disc the camera cut straight, padded into a bigger black frame (a
    camera that keeps its whole sensor, a crop padded for upload): the cuts now lie inside the
    picture, so they are no rim; the arcs between them give the circle (version 4 found none
    for 19 of 50 EyePACS photographs so framed)."""
    disc = disc_image(300, 300, 150.0, 150.0, 120.0)
    cut = 40  # a third of the radius off each cut side
    if sides == "all":
        disc[:cut], disc[-cut:], disc[:, :cut], disc[:, -cut:] = 0, 0, 0, 0
    else:
        disc[:cut], disc[-cut:] = 0, 0
    frame = np.zeros((500, 560, 3), np.uint8)
    frame[100:400, 130:430] = disc
    found = find_field_of_view(frame)
    assert found is not None
    assert abs(found.cx - 280) < 2 and abs(found.cy - 250) < 2 and abs(found.r - 120) < 2
