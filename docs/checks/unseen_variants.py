"""How the image checks treat camera changes they were never shown (issue #38: "we also judge on
cameras kept apart").

    python3 docs/checks/unseen_variants.py [--model models/keras_model.h5] [--per-source 25]

The modality check was taught the camera variants of `training/classifier/camera_variants.py`
(clipped 3:2, wide frame, a stop over and under, a warm balance, sizes). Here the same seeded
sample of real fundus4 test photographs (25 per source) is changed in ways it never saw: heavy
JPEG compression, sensor noise, vignetting, a green or pale or oversaturated colour balance, a
slight blur, a quarter turn, low contrast, and a 3:2 frame with a warm balance together. Each is
still a fundus photograph, so every refusal is a false one. Prints, per change, the share refused
by the shipped model's checks and why.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from retina_desktop.core.settings import Settings  # noqa: E402
from retina_desktop.services.classify import Classifier  # noqa: E402
from training.classifier import camera_variants  # noqa: E402
from training.classifier.fit_checks import camera_variant_report  # noqa: E402


def _jpeg(quality: int):
    def compress(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")

    return compress


def _noisy(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, np.float32)
    noise = np.random.default_rng(0).normal(0, 8, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _vignetted(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image, np.float32)
    height, width = pixels.shape[:2]
    ys, xs = np.mgrid[:height, :width]
    radius = np.hypot((xs - width / 2) / (width / 2), (ys - height / 2) / (height / 2))
    gain = np.clip(1 - 0.5 * radius**2, 0.3, 1)
    return Image.fromarray(np.clip(pixels * gain[..., None], 0, 255).astype(np.uint8))


UNSEEN = {
    "jpeg-quality-20": _jpeg(20),
    "noise-sd-8": _noisy,
    "vignette": _vignetted,
    "greenish": lambda image: camera_variants._scaled(image, (0.85, 1.15, 1.0)),
    "pale": lambda image: ImageEnhance.Color(image).enhance(0.5),
    "oversaturated": lambda image: ImageEnhance.Color(image).enhance(1.6),
    "blur-1.5px": lambda image: image.filter(ImageFilter.GaussianBlur(1.5)),
    "quarter-turn": lambda image: image.rotate(90, expand=True),
    "low-contrast": lambda image: ImageEnhance.Contrast(image).enhance(0.6),
    "clipped-3:2-and-warm": lambda image: camera_variants._scaled(camera_variants.clipped_3_2(image), (1.25, 1.0, 0.6)),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "keras_model.h5"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "fundus4"))
    parser.add_argument("--per-source", type=int, default=25)
    args = parser.parse_args()
    classifier = Classifier(args.model, settings=Settings(checks_enabled=False))
    report = camera_variant_report(classifier, Path(args.data), classifier.thresholds(),
                                   classifier.bundle().metadata.modality, per_source=args.per_source,
                                   variants=UNSEEN)
    for name, entry in report.items():
        why = ", ".join(f"{k} {v}" for k, v in entry["reasons"].items())
        print(f"{name:22s} {entry['n']:4d} photographs  refused {entry['refused']:6.1%}  {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
