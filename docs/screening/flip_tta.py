"""Does averaging a photograph with its mirror image (test-time flip) pay for its time? Issue #33
item 7: measured on the shipped recipe's head, not assumed.

    python3 docs/screening/flip_tta.py [--cache runs/screening/cache]

The head of `screening-probe` (Lite0, 224 px, as chosen on val) is fitted on the unflipped
training features; val, test and both external sets are read again mirrored left to right, and
the probabilities of the two views are averaged. Prints the val selection score and the test and
external AUCs with and without the flip, and the extra time (a second model call per image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from retina_desktop.core.model_card import InputSpec  # noqa: E402  (after ROOT joins sys.path)
from training.datasets import ALL_SPLITS, class_indices, load_arrays, load_dataset  # noqa: E402
from training.evaluation.metrics import rank_auc  # noqa: E402
from training.evaluation.referral import DR_CLASS, HEALTHY_CLASS, REFERABLE_GRADE, referable_rows  # noqa: E402
from training.experiments.screening import ScreeningConfig, search_head  # noqa: E402
from training.experiments.screening_features import cached_features, pool_columns, pool_widths  # noqa: E402
from training.experiments.screening_head import fit_head, selection_score  # noqa: E402
from training.experiments.screening_sets import feature_sets  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(ROOT / "runs" / "screening" / "cache"))
    args = parser.parse_args()
    config = ScreeningConfig()
    externals = [DATA / "fundus-external", DATA / "messidor2"]
    classes, sets, network = feature_sets(config.backbone(), DATA / "fundus4", externals, Path(args.cache),
                                          log=lambda *_: None)
    widths = pool_widths(network)
    choice, _ = search_head(sets, classes, config, widths, log=lambda *_: None)
    columns = pool_columns(widths, choice.pools)
    train = sets["train"]
    dr, healthy = classes.index(DR_CLASS), classes.index(HEALTHY_CLASS)
    head = fit_head(train.features[:, columns], train.labels, train.grades, dr, choice)
    spec = InputSpec(config.size, config.size, config.fit, "none")
    fundus4 = load_dataset(DATA / "fundus4")
    sources = {"val": (fundus4, "val", None), "test": (fundus4, "test", None)}
    for folder in externals:
        external = load_dataset(folder)
        sources[folder.name] = (external, ALL_SPLITS, class_indices(external, classes, "the model"))
    for name, (dataset, split, index_of) in sources.items():
        samples = dataset.subset(split)

        def mirrored(dataset=dataset, samples=samples, index_of=index_of):
            return load_arrays(dataset, samples, spec, index_of=index_of)[0][:, :, ::-1]

        key = f"{config.backbone().tag()}|{Path(dataset.root).resolve()}|{split}|{len(samples)}|flip"
        flipped = cached_features(network, mirrored, key, Path(args.cache), desc=f"{name} mirrored")
        s = sets[name]
        plain = head.probabilities(s.features[:, columns])
        both = (plain + head.probabilities(flipped[:, columns])) / 2
        rows = referable_rows(s.labels, s.grades, classes)
        pair = np.isin(s.labels, [dr, healthy])
        for label, probs in (("one view", plain), ("with flip", both)):
            figures = [f"macro/selection {selection_score(probs, s.labels, s.grades, classes)['score']:.4f}",
                       f"DR vs normal AUC {rank_auc(s.labels[pair] == dr, probs[pair, dr]):.4f}"]
            if rows.any():
                figures.append(f"referable AUC {rank_auc(s.grades[rows] >= REFERABLE_GRADE, probs[rows, dr]):.4f}")
            print(f"{name:16s} {label:10s} " + ", ".join(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
