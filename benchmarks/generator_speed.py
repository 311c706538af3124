"""Prints how fast the Augment tab's generators draw, on the path the app uses (LiteRT).

    python benchmarks/generator_speed.py [--generator models/generator.keras] [--oct models/oct/generator.keras]
                                         [--vessels models/vessels/generator.keras]

- class-conditional GAN: seconds for a grid of 64 images (the issue's target: under a second),
  warm, through `synthesis.sample` exactly as the Augment tab calls it, and through Keras for
  comparison;
- vessel-to-fundus pix2pix: seconds per 256 x 256 image (target: under 0.2 s), warm, LiteRT and
  Keras.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import summary, timed  # noqa: E402  (benchmarks/, beside this script)


def main() -> int:
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.services.synthetic_samples import CONDITIONAL, latents, open_generator, sample
    from retina_desktop.services.vessel_synthesis import generator_input, random_vessel_tree

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=str(ROOT / "models" / "generator.keras"))
    parser.add_argument("--oct", default=str(ROOT / "models" / "oct" / "generator.keras"))
    parser.add_argument("--vessels", default=str(ROOT / "models" / "vessels" / "generator.keras"))
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    keras = import_keras()
    for path in (Path(args.generator), Path(args.oct), Path(args.vessels)):
        if not path.is_file():
            print(f"{path}: not found, skipped")
            continue
        generator = open_generator(path)
        info = generator.info
        model = keras.saving.load_model(path, compile=False)
        if info.kind == CONDITIONAL:
            label = info.classes[0]
            z = latents(0, range(64), info.latent_dim)
            labels = np.zeros(64, np.int32)
            print(f"{path} ({info.size} px, {len(info.classes)} classes): 64 images")
            # timed() calls each lambda at once, so binding this iteration's values changes nothing.
            lite = timed(lambda generator=generator, label=label: sample(generator, label, 64, seed=0), args.repeat)
            print(f"  LiteRT (the app)  {summary(lite)}")
            full = timed(lambda model=model, z=z, labels=labels: model([z, labels], training=False), args.repeat)
            print(f"  Keras  (training) {summary(full)}")
        else:
            vessels, fov = random_vessel_tree(info.size, seed=0)
            planes = generator_input(vessels, fov, info.styles[0], info.styles, info.size)
            print(f"{path} ({info.size} px, styles {', '.join(info.styles)}): 1 image")
            lite = timed(lambda generator=generator, planes=planes: generator.translate(planes), args.repeat)
            print(f"  LiteRT (the app)  {summary(lite)}")
            full = timed(lambda model=model, planes=planes: model(planes, training=False), args.repeat)
            print(f"  Keras  (training) {summary(full)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
