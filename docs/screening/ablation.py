"""The screening model's ablation table (docs/fundus-models.md): each backbone and head variant,
chosen on val, reported on val, the test split and both external sets.

    python3 docs/screening/ablation.py lite0@224 lite0@320 lite2@260 [--cache runs/screening/cache]
    python3 docs/screening/ablation.py lite0@224=runs/lpft/wise-0.50.weights.h5   # other weights

For each backbone (EfficientNet-Lite variant @ input size, `fov` framing, ImageNet's weights or
the `.weights.h5` file after `=`, such as a WiSE-FT interpolation from `import-weights --toward`):
the frozen features of fundus4's splits and of fundus-external and messidor2 (cached, so a second
run reads them), the head that `screening-probe` would choose on val (`search_head`), the
held-out-camera figure that compares backbones (`held_out_camera_figures`: training data only),
and three variants of the chosen head: as chosen (training prior), with balanced class priors, and
without grade weights. Each row: the val selection score; test macro, DR-vs-normal and
referable-DR AUC; healthy test eyes called glaucoma; fundus-external DR-vs-normal AUC, DR eyes
referred and healthy eyes not referred; messidor2 referable-DR AUC, referable eyes referred and
grade-0 eyes not referred. The referral threshold of every row is chosen on its own val p(DR)
(sensitivity 0.9 to referable eyes), after a temperature fitted on val, as `evaluate` does. The
external sets choose nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from retina_desktop.inference.calibration import apply_temperature  # noqa: E402
from training.evaluation.metrics import fit_temperature, rank_auc  # noqa: E402
from training.evaluation.referral import DR_CLASS, HEALTHY_CLASS, referable_rows, referral_threshold, screening_figures  # noqa: E402
from training.evaluation.tables import markdown_table  # noqa: E402
from training.experiments.config import ScreeningConfig  # noqa: E402
from training.experiments.screening import held_out_camera_figures, search_head  # noqa: E402
from training.experiments.screening_features import pool_columns, pool_widths  # noqa: E402
from training.experiments.screening_head import fit_head, selection_score  # noqa: E402
from training.experiments.screening_sets import feature_sets  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
EXTERNAL = ("fundus-external", "messidor2")


def row_figures(classes, sets, head, columns) -> dict[str, float]:
    """One head's figures at its own val-chosen temperature and referral threshold."""
    dr, healthy, glaucoma = (classes.index(c) for c in (DR_CLASS, HEALTHY_CLASS, "glaucoma"))
    probs = {name: head.probabilities(sets[name].features[:, columns]) for name in ("val", "test", *EXTERNAL)}
    temperature = fit_temperature(probs["val"], sets["val"].labels)
    calibrated = {name: apply_temperature(p, temperature) for name, p in probs.items()}
    val = sets["val"]
    rows = referable_rows(val.labels, val.grades, classes)
    threshold = referral_threshold(calibrated["val"][rows, dr], val.grades[rows] >= 2)
    out = {"val score": selection_score(probs["val"], val.labels, val.grades, classes)["score"]}
    for name in ("test", *EXTERNAL):
        s, p = sets[name], calibrated[name]
        others = np.where(np.arange(len(classes)) == dr, -1.0, p)
        reported = np.where(p[:, dr] >= threshold, dr, others.argmax(axis=1))
        figures = screening_figures(p, s.labels, reported, s.grades, classes, n_bootstrap=0)
        pair = np.isin(s.labels, [dr, healthy])
        ref = figures.get("referable_dr", {})
        if name == "test":
            out["test macro AUC"] = selection_score(p, s.labels, s.grades, classes)["macro_auc"]
            out["test DR AUC"] = rank_auc(s.labels[pair] == dr, p[pair, dr])
            out["test referable AUC"] = ref["auc"]
            out["test healthy called glaucoma"] = figures["healthy_called"]["glaucoma"]
            out["test glaucoma AUC"] = rank_auc(s.labels == glaucoma, p[:, glaucoma])
        elif name == "fundus-external":
            out["external DR AUC"] = rank_auc(s.labels[pair] == dr, p[pair, dr])
            out["external DR referred"] = float(np.mean(reported[s.labels == dr] == dr))
            out["external healthy not referred"] = float(np.mean(reported[s.labels == healthy] != dr))
        else:
            out["messidor2 referable AUC"] = ref["auc"]
            out["messidor2 referable referred"] = ref["referred"]
            out["messidor2 grade 0 not referred"] = ref["grade0_not_referred"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("backbones", nargs="+", metavar="liteN@SIZE[=WEIGHTS]")
    parser.add_argument("--cache", default=str(ROOT / "runs" / "screening" / "cache"))
    args = parser.parse_args()
    table: list[tuple[str, dict]] = []
    for spec in args.backbones:
        backbone, _, weights = spec.partition("=")
        variant, size = backbone.split("@")
        config = ScreeningConfig(architecture=f"efficientnet-{variant}", size=int(size), weights=weights or "imagenet")
        classes, sets, network = feature_sets(config.backbone(), DATA / "fundus4", [DATA / e for e in EXTERNAL],
                                              Path(args.cache), log=lambda *_: None)
        widths = pool_widths(network)
        choice, _ = search_head(sets, classes, config, widths, log=lambda *_: None)
        held = held_out_camera_figures(sets, classes, choice, widths)
        columns = pool_columns(widths, choice.pools)
        train = sets["train"]
        dr = classes.index(DR_CLASS)
        for label, head_choice in (("as chosen", choice),
                                   ("balanced prior", dataclasses.replace(choice, prior="balanced")),
                                   ("no grade weights", dataclasses.replace(choice, referable_weight=1.0,
                                                                            mild_weight=1.0))):
            head = fit_head(train.features[:, columns], train.labels, train.grades, dr, head_choice)
            figures = row_figures(classes, sets, head, columns)
            figures["worst held-out camera referable AUC"] = held["worst_referable_auc"]
            name = (f"{spec}, C {head_choice.C:g}, grade weights {head_choice.referable_weight:g}/"
                    f"{head_choice.mild_weight:g}, {head_choice.prior} prior ({label})")
            table.append((name, figures))
            print(f"# {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()), flush=True)
    keys = list(table[0][1])
    rows = [[key, *(f"{figures[key]:.3f}" for _, figures in table)] for key in keys]
    print("\n" + markdown_table(["figure", *(name for name, _ in table)], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
