"""Two cheap levers on the screening model's frozen features, measured as the ablation measures a
backbone (issue #33 items 2, 3 and 7; docs/fundus-models.md):

    python3 docs/screening/levers.py [--copies 1 2] [--cache runs/screening/cache]

- **Multi-scale mean**: the same Lite0 weights read each photograph at 224 and at 320 px, each
  size with its own head as `screening-probe` would choose it on val, the two heads'
  probabilities averaged (one 14 MB network, two model calls).
- **Camera copies**: the head of the shipped recipe (Lite0, 224 px) fitted on the train split's
  features plus those of N copies of every training photograph through `camera_augment_batch`
  (colour balance, blur, JPEG, resolution, vignetting, frame cut; seeded per copy), so the head
  learns what stays when the camera changes. The frozen network cannot learn that itself.

Each row is chosen and thresholded on val exactly as `ablation.py`'s (`row_figures`); the
external sets choose nothing. Features are cached (`--cache`), augmented copies included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ablation import DATA, EXTERNAL, row_figures  # noqa: E402

from retina_desktop.core.model_card import InputSpec  # noqa: E402  (after ROOT joins sys.path)
from retina_desktop.imaging.camera_augment import CameraAugmentConfig, camera_augment_batch  # noqa: E402
from training.datasets import load_arrays, load_dataset  # noqa: E402
from training.evaluation.referral import DR_CLASS  # noqa: E402
from training.evaluation.tables import markdown_table  # noqa: E402
from training.experiments.config import ScreeningConfig  # noqa: E402
from training.experiments.screening import search_head  # noqa: E402
from training.experiments.screening_features import cached_features, pool_columns, pool_widths  # noqa: E402
from training.experiments.screening_head import fit_head  # noqa: E402
from training.experiments.screening_sets import FeatureSet, feature_sets  # noqa: E402


class MeanOfHeads:
    """Heads on side-by-side feature blocks, their probabilities averaged."""

    def __init__(self, heads, widths: list[int]):
        self.heads, self.widths = heads, widths

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        edges = np.cumsum([0, *self.widths])
        return np.mean([head.probabilities(features[:, a:b]) for head, a, b in zip(self.heads, edges, edges[1:])],
                       axis=0)


def features(config: ScreeningConfig, cache: Path):
    """(classes, sets, network) of fundus4's splits and both external sets, as the ablation reads them."""
    return feature_sets(config.backbone(), DATA / "fundus4", [DATA / e for e in EXTERNAL], cache, log=lambda *_: None)


def chosen_head(sets, classes: list[str], config: ScreeningConfig, network):
    """(the columns of the val-chosen pools, the head fitted on them), as `screening-probe` chooses."""
    widths = pool_widths(network)
    choice, _ = search_head(sets, classes, config, widths, log=lambda *_: None)
    columns = pool_columns(widths, choice.pools)
    train = sets["train"]
    return columns, fit_head(train.features[:, columns], train.labels, train.grades, classes.index(DR_CLASS), choice)


def multi_scale(cache: Path, sizes=(224, 320)) -> dict:
    members = []
    for size in sizes:
        config = ScreeningConfig(size=size)
        classes, sets, network = features(config, cache)
        members.append((sets, *chosen_head(sets, classes, config, network)))
    first = members[0][0]
    joined = {name: FeatureSet(name, np.concatenate([m[0][name].features[:, m[1]] for m in members], axis=1),
                               s.labels, s.grades, s.sources, s.files) for name, s in first.items()}
    head = MeanOfHeads([m[2] for m in members], [len(m[1]) for m in members])
    return row_figures(classes, joined, head, np.arange(joined["train"].features.shape[1]))


def camera_copies(cache: Path, copies: int) -> dict:
    config = ScreeningConfig()
    classes, sets, network = features(config, cache)
    dataset = load_dataset(DATA / "fundus4")
    samples = dataset.subset("train")
    train = sets["train"]
    extra = []
    for copy in range(copies):
        def augmented(copy=copy):
            spec = InputSpec(config.size, config.size, config.fit, "none")
            images = load_arrays(dataset, samples, spec, progress=False)[0]
            return camera_augment_batch(images, CameraAugmentConfig(), np.random.default_rng([config.seed, copy, 7]))

        key = f"{config.backbone().tag()}|{Path(dataset.root).resolve()}|train|{len(samples)}|camera copy {copy}"
        extra.append(cached_features(network, augmented, key, cache, desc=f"camera copy {copy + 1}"))
    n = copies + 1
    sets = {**sets, "train": FeatureSet("train", np.concatenate([train.features, *extra]), np.tile(train.labels, n),
                                        np.tile(train.grades, n), np.tile(train.sources, n), train.files * n)}
    columns, head = chosen_head(sets, classes, config, network)
    return row_figures(classes, sets, head, columns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, nargs="*", default=[1, 2], help="camera copies to measure")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "screening" / "cache"))
    args = parser.parse_args()
    cache = Path(args.cache)
    table = [("Lite0 224 (shipped recipe)", camera_copies(cache, 0)), ("mean of 224 and 320 px", multi_scale(cache))]
    table += [(f"224 px, head on {n} camera cop{'y' if n == 1 else 'ies'} too", camera_copies(cache, n))
              for n in args.copies]
    rows = [[key, *(f"{figures[key]:.3f}" for _, figures in table)] for key in table[0][1]]
    print(markdown_table(["figure", *(name for name, _ in table)], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
