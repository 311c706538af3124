"""The `pix2pix-eval` verb: how close a vessel-to-fundus generator's images are to the real ones.

For each pair of a pairs folder (pairs it never trained on, e.g. DRIVE's test/), the generator
draws a photograph from the vessel mask and field of view in the folder's colour style, and
it is compared with the real photograph, both as floats in [0, 1], at the generator's size S
(the real photograph and its field of view are stretched to S x S as in training):

- MSE: mean squared difference over pixels and channels;
- PSNR = 10 log10(1 / MSE) dB, from that MSE; identical images (MSE 0) give 100 dB, the cap
  (MSE floored at 1e-10) that keeps every figure a finite number in JSON;
- SSIM: scikit-image's `structural_similarity` (7 x 7 uniform window, K1 0.01, K2 0.03,
  data_range 1, channels averaged).

Each is computed inside the field of view (MSE and PSNR over FOV pixels only; SSIM as the mean
of the full SSIM map over FOV pixels) and on the whole image (scikit-image's mean SSIM). The
unsuffixed figures are the FOV ones. Means are over images (PSNR: the mean of per-image PSNRs).

A diagnostic beside them (`exposure_matched`, in the report file and the printed summary, not
in --json): the same FOV figures after each generated image's mean colour is moved to its real
photograph's. A vessel mask carries nothing about a photograph's exposure, so this separates
what the generator could have drawn (vessels, disc, texture) from the exposure it cannot know.
A second (`coarse_only`): the FOV figures if every detail finer than 1/32 of the image (8 px at
256) were the real photograph's, so that only the coarse error is left: exposure, the camera's
uneven illumination and the glow around the optic disc. It bounds what a better drawing of
vessels and texture alone could reach.

Writes pix2pix_eval.json (means, per image, settings), pix2pix_eval.csv (per image) and
source_generated_expected.png to --out; --json prints only
{"n", "mse", "ssim", "psnr", "mse_whole", "ssim_whole", "psnr_whole"}.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.services.vessel_synthesis import SynthesisSpec, generator_input, resize_image, resize_mask
from training.pix2pix.config import Pix2PixEvalOptions
from training.pix2pix.data import find_pairs, mean_colour, read_pair, with_mean_colour

logger = logging.getLogger(__name__)

MSE_FLOOR = 1e-10  # PSNR cap: 100 dB
FIGURES = ("mse", "ssim", "psnr", "mse_whole", "ssim_whole", "psnr_whole")


def _as_unit(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def _check_pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must both be (H, W, 3); got {a.shape} and {b.shape}")
    if mask is not None and mask.shape != a.shape[:2]:
        raise ValueError(f"mask must be {a.shape[:2]}, not {mask.shape}")
    if mask is not None and not mask.any():
        raise ValueError("the field-of-view mask is empty")


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error of two RGB images (uint8, or floats in [0, 1]) on the [0, 1] scale,
    over the pixels where `mask` is True (all pixels when None)."""
    a, b = _as_unit(a), _as_unit(b)
    _check_pair(a, b, mask)
    squared = (a - b) ** 2
    return float(squared[mask].mean() if mask is not None else squared.mean())


def psnr(mse_value: float) -> float:
    """10 log10(1 / MSE) dB for images in [0, 1]; capped at 100 dB (MSE floored at 1e-10)."""
    return float(10.0 * np.log10(1.0 / max(mse_value, MSE_FLOOR)))


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image, data_range 1, channels averaged); with `mask`, the
    mean of the full SSIM map over the masked pixels, else scikit-image's mean SSIM."""
    from skimage.metrics import structural_similarity

    a, b = _as_unit(a), _as_unit(b)
    _check_pair(a, b, mask)
    mean, full = structural_similarity(a, b, channel_axis=-1, data_range=1.0, full=True)
    return float(full[mask].mean() if mask is not None else mean)


def image_figures(generated: np.ndarray, expected: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """All six figures of one image (unsuffixed: inside the field of view)."""
    inside, whole = mse(generated, expected, fov), mse(generated, expected)
    return {
        "mse": inside, "ssim": ssim(generated, expected, fov), "psnr": psnr(inside),
        "mse_whole": whole, "ssim_whole": ssim(generated, expected), "psnr_whole": psnr(whole),
    }


def exposure_matched_figures(generated: np.ndarray, expected: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """The field-of-view figures once `generated` has the real photograph's mean colour there."""
    matched = with_mean_colour(generated, fov, mean_colour(expected, fov))
    inside = mse(matched, expected, fov)
    return {"mse": inside, "ssim": ssim(matched, expected, fov), "psnr": psnr(inside)}


COARSE_FRACTION = 1 / 32  # Gaussian sigma of the coarse error, as a share of the image side


def coarse_only_figures(generated: np.ndarray, expected: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """The field-of-view figures of the real photograph plus only the coarse part of the error.

    The error (generated - expected, in [0, 1] units) is low-passed with a Gaussian of sigma
    `COARSE_FRACTION` of the side, normalised inside the field of view so that the black rim
    does not bleed in; detail finer than that is taken as drawn perfectly.
    """
    from scipy.ndimage import gaussian_filter

    sigma = COARSE_FRACTION * generated.shape[0]
    g, e = _as_unit(generated), _as_unit(expected)
    inside = fov.astype(np.float64)
    weight = gaussian_filter(inside, sigma) + 1e-6
    coarse = np.stack([gaussian_filter((g - e)[..., c] * inside, sigma) / weight for c in range(3)], axis=-1)
    drawn = np.where(fov[..., None], np.clip(e + coarse, 0, 1), e)
    error = mse(drawn, e, fov)
    return {"mse": error, "ssim": ssim(drawn, e, fov), "psnr": psnr(error)}


def load_vessel_generator(path: str | Path):
    """(Keras generator, SynthesisSpec); UserError naming the file when it is not one."""
    from retina_desktop.core.quiet import import_keras

    path = Path(path)
    if not path.is_file():
        raise UserError(f'Generator not found: "{path}"')
    spec = SynthesisSpec.read(path)
    keras = import_keras()
    try:
        generator = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise UserError(f'"{path}" could not be loaded as a Keras generator: {err}') from err
    expected = (None, spec.size, spec.size, 2 + len(spec.styles))
    if tuple(generator.inputs[0].shape) != expected or len(generator.inputs) != 1:
        raise UserError(f'"{path}" takes input {tuple(generator.inputs[0].shape)}, its sidecar implies {expected}')
    return generator, spec


def time_generation(generator, sources: np.ndarray, repeats: int = 5) -> float:
    """Seconds to generate one image (batch of one, compiled call, after a warm-up)."""
    import tensorflow as tf

    compiled = tf.function(lambda x: generator(x, training=False))
    one = sources[:1]
    compiled(one)
    started = time.perf_counter()
    for _ in range(repeats):
        np.asarray(compiled(one))
    return (time.perf_counter() - started) / repeats


def evaluate_pairs(model_path: str | Path, pairs_dir: str | Path, style: str | None = None,
                   out_dir: Path | None = None, quiet: bool = False) -> dict:
    """Generate every pair's photograph, measure it against the real one, write the outputs."""
    from tqdm import tqdm

    from training.pix2pix.trainer import generate  # loads Keras, as the generator needs anyway

    generator, spec = load_vessel_generator(model_path)
    folder = find_pairs(pairs_dir, style)
    if folder.style not in spec.styles:
        raise UserError(f'style "{folder.style}" of "{folder.root}" is not one the generator learned '
                        f"({', '.join(spec.styles)}); choose one with --style")
    size = spec.size
    names, sources, expected, fovs = [], [], [], []
    for pair in tqdm(folder.pairs, desc="reading pairs", unit="pair", disable=quiet, leave=False):
        photo, vessels, fov = read_pair(pair)
        names.append(pair.name)
        sources.append(generator_input(vessels, fov, folder.style, spec.styles, size)[0])
        expected.append(resize_image(photo, size))
        fovs.append(resize_mask(fov, size, keep_thin=False))
    sources = np.stack(sources)
    generated = generate(generator, sources)
    rows = [{"name": n} | image_figures(g, e, f) for n, g, e, f in zip(names, generated, expected, fovs)]
    means = {k: float(np.mean([r[k] for r in rows])) for k in FIGURES}
    matched = [exposure_matched_figures(g, e, f) for g, e, f in zip(generated, expected, fovs)]
    coarse = [coarse_only_figures(g, e, f) for g, e, f in zip(generated, expected, fovs)]
    report = {
        "n": len(rows),
        **means,
        "fov_source": "fov/ masks" if folder.pairs[0].fov else "estimated from the photographs",
        "model": str(model_path),
        "pairs": str(folder.root),
        "style": folder.style,
        "size": size,
        "how": f"at {size} x {size}: real photograph and field of view stretched to the generator's size; "
               "unsuffixed figures inside the field of view, *_whole on all pixels; MSE on [0, 1]; "
               "PSNR = 10 log10(1/MSE) per image (capped at 100 dB), averaged over images; "
               "SSIM: scikit-image structural_similarity, 7x7 window, data_range 1",
        "exposure_matched": {
            **_field_of_view_means(matched),
            "how": "diagnostic, not a result: field-of-view figures after each generated image's mean colour "
                   "there is moved to its real photograph's (an exposure the vessel mask does not carry)",
        },
        "coarse_only": {
            **_field_of_view_means(coarse),
            "how": f"diagnostic, not a result: field-of-view figures if every detail finer than a Gaussian of sigma "
                   f"{COARSE_FRACTION * size:g} px were the real photograph's (only the coarse error left: "
                   "exposure, illumination, disc glow)",
        },
        "seconds_per_image": round(time_generation(generator, sources), 4),
        "per_image": rows,
    }
    if out_dir is not None:
        write_outputs(report, sources, generated, np.stack(expected), Path(out_dir))
    return report


def _field_of_view_means(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean MSE, SSIM and PSNR over images of one diagnostic."""
    return {k: float(np.mean([r[k] for r in rows])) for k in ("mse", "ssim", "psnr")}


def write_outputs(report: dict, sources, generated, expected, out_dir: Path) -> None:
    from PIL import Image

    with atomic_write(out_dir / "pix2pix_eval.json") as handle:
        json.dump(report, handle, indent=2)
    with atomic_write(out_dir / "pix2pix_eval.csv", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", *FIGURES])
        writer.writeheader()
        writer.writerows(report["per_image"])
    figure = comparison_figure(sources, generated, expected, report["per_image"])
    atomic_save(out_dir / "source_generated_expected.png", Image.fromarray(figure).save)


def comparison_figure(sources, generated, expected, rows: list[dict]) -> np.ndarray:
    """Rows of source (vessels, FOV grey) | generated | expected, headed and captioned."""
    from PIL import Image, ImageDraw

    from training.pix2pix.trainer import mask_preview

    size = sources.shape[1]
    header, caption = 22, 18
    canvas = Image.new("RGB", (3 * size, header + len(rows) * (size + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(("source (vessel mask)", "generated", "expected (real)")):
        draw.text((column * size + 6, 5), title, fill=(0, 0, 0))
    for i, (s, g, e, row) in enumerate(zip(mask_preview(sources), generated, expected, rows)):
        top = header + i * (size + caption)
        canvas.paste(Image.fromarray(np.concatenate([s, g, e], axis=1)), (0, top))
        draw.text((6, top + size + 3), f"{row['name']}: in field of view SSIM {row['ssim']:.3f}, "
                  f"PSNR {row['psnr']:.2f} dB, MSE {row['mse']:.4f}", fill=(0, 0, 0))
    return np.asarray(canvas)


def format_report(report: dict) -> str:
    lines = [
        f"{report['n']} pairs of {report['pairs']} (style {report['style']}), at {report['size']} x {report['size']}; "
        f"field of view from {report['fov_source']}",
        f"  {'':24s} {'MSE':>8s} {'SSIM':>7s} {'PSNR dB':>8s}",
    ]
    for row in report["per_image"]:
        lines.append(f"  {row['name']:24s} {row['mse']:8.4f} {row['ssim']:7.4f} {row['psnr']:8.2f}"
                     f"   whole image {row['mse_whole']:.4f} {row['ssim_whole']:.4f} {row['psnr_whole']:.2f}")
    lines += [
        f"  {'mean, field of view':24s} {report['mse']:8.4f} {report['ssim']:7.4f} {report['psnr']:8.2f}",
        f"  {'mean, whole image':24s} {report['mse_whole']:8.4f} {report['ssim_whole']:7.4f} "
        f"{report['psnr_whole']:8.2f}",
        _diagnostic_line("exposure matched (FOV)", report["exposure_matched"],
                         "each image given its photograph's mean colour, which no mask carries"),
        _diagnostic_line("coarse error only (FOV)", report["coarse_only"],
                         f"every detail finer than {COARSE_FRACTION * report['size']:g} px drawn exactly"),
        f"  generation: {report['seconds_per_image'] * 1000:.0f} ms per {report['size']} x {report['size']} image",
    ]
    return "\n".join(lines)


def _diagnostic_line(label: str, figures: dict, note: str) -> str:
    return (f"  {label:24s} {figures['mse']:8.4f} {figures['ssim']:7.4f} {figures['psnr']:8.2f}"
            f"   (diagnostic: {note})")


def run_pix2pix_eval(options: Pix2PixEvalOptions) -> dict:
    """`pix2pix-eval`: judge the generator on the pairs, write the report beside it (or to
    `options.out`) and with `--store-metrics` into its sidecar; returns the report."""
    model = Path(options.model)
    out = Path(options.out) if options.out else model.parent / "pix2pix_eval"
    report = evaluate_pairs(model, options.pairs, options.style, out, quiet=options.json)
    if options.store_metrics:
        sidecar_file = model.with_suffix(".json")
        sidecar = json.loads(sidecar_file.read_text())
        sidecar["metrics"] = {k: v for k, v in report.items() if k != "per_image"}
        with atomic_write(sidecar_file) as handle:
            json.dump(sidecar, handle, indent=2)
    if not options.json:  # with --json the command prints `headline(report)` alone
        logger.info(format_report(report))
        logger.info(f"wrote pix2pix_eval.json, pix2pix_eval.csv and source_generated_expected.png to {out}")
    return report


def headline(report: dict) -> dict:
    """What `pix2pix-eval --json` prints: the number of pairs and the mean figures."""
    return {"n": report["n"], **{k: report[k] for k in FIGURES}}
