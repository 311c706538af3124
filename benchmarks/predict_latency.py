"""Prints the latency figures of the inference service next to the plain Keras pattern.

    python benchmarks/predict_latency.py [--model models/keras_model.h5] [--image FILE] [--repeat 30]

- warm per-image latency of `Classifier.predict_file` (our path: decode, checks, fit, compiled
  call) with the checks on and off, of the image checks alone (their own field-of-view search
  included, which a prediction shares with its fit),
  and of the model-only part (`predict_arrays`), next to the seed projects' pattern on the
  same model and image: `model.predict(x)` per image;
- time from process start to the first result, for `python -m retina_desktop predict FILE`
  in a fresh process (interpreter, TensorFlow import, model load, first prediction).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import summary, timed  # noqa: E402  (benchmarks/, beside this script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "keras_model.h5"))
    parser.add_argument("--image", help="default: a sample from assets/ or ../shared/data")
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    image = Path(args.image) if args.image else _some_image()

    command = [sys.executable, "-m", "retina_desktop", "predict", str(image), "--model", args.model, "--json"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    cold = time.perf_counter() - start

    from retina_desktop.core.settings import Settings
    from retina_desktop.imaging.decode import load_image
    from retina_desktop.imaging.preprocessing import fit_image, scale_pixels
    from retina_desktop.services.classify import Classifier

    classifier = Classifier(args.model)
    bundle = classifier.bundle()
    fitted = fit_image(load_image(image).rgb, bundle.metadata.input)
    x = scale_pixels(fitted[None], bundle.metadata.input.scaling)

    loaded = load_image(image)
    checks = timed(lambda: classifier.check(loaded), args.repeat)
    ours_file = timed(lambda: classifier.predict_file(image), args.repeat)
    unchecked = Classifier(args.model, settings=Settings(checks_enabled=False))
    unchecked.predict_file(image)
    ours_file_unchecked = timed(lambda: unchecked.predict_file(image), args.repeat)
    ours_model = timed(lambda: classifier.predict_arrays(fitted[None]), args.repeat)
    plain = timed(lambda: bundle.model.predict(x, verbose=0), args.repeat)

    print(
        f"model: {args.model} ({bundle.metadata.name}, "
        f"input {bundle.metadata.input.height}x{bundle.metadata.input.width})"
    )
    print(f"image: {image}")
    print(f"warm, per image, {args.repeat} runs:")
    print(f"  plain model.predict(x)                  {summary(plain)}")
    print(f"  Classifier.predict_arrays (model only)  {summary(ours_model)}")
    print(f"  image checks (statistics + modality)    {summary(checks)}")
    print(f"  predict_class path (decode+checks+model) {summary(ours_file)}")
    print(f"  the same with the checks off            {summary(ours_file_unchecked)}")
    added = (statistics.median(ours_file) - statistics.median(ours_file_unchecked)) * 1000
    overhead = (statistics.median(ours_file) - statistics.median(ours_model)) * 1000
    print(f"  what the checks add to a prediction: {added:.1f} ms (they share its field-of-view search); "
          f"the path beyond the model call: {overhead:.1f} ms")
    print(f"  speed-up of the model call: {statistics.median(plain) / statistics.median(ours_model):.1f}x")
    print(f"process start to first result (python -m retina_desktop predict): {cold:.2f} s")
    return 0


def _some_image() -> Path:
    candidates = sorted((ROOT / "assets" / "samples").glob("*.png")) + sorted(
        (ROOT.parent / "shared" / "data" / "fundus4" / "glaucoma").glob("*")
    )
    if not candidates:
        raise SystemExit("no sample image found: pass --image FILE")
    return candidates[0]


if __name__ == "__main__":
    raise SystemExit(main())
