"""The `fit-checks` verb: fit a model's image-check thresholds on its training and validation
images, then measure on images it never saw how often the checks flag real test images, non-retinal images,
images of the other modality, and realistic wrong inputs (`--wrong-inputs`: angiograms, OCT
angiography, red-free and greyscale fundus photographs; the fixed test part of
`training.classifier.wrong_inputs`, never trained on), per kind. Thresholds and figures go into the model's
sidecar.

Every limit sits at the least value (`--percentile`, 0 by default) that any of the training and
validation photographs has (`--fit-splits`; fundus4's 5,591), all of which the data sets'
graders kept as gradable: a photograph is refused only when it is worse than every one of them.
At the 0.1 percentile of those 5,591 (their sixth worst) the limits refused 12 gradable test
photographs (dim ones with every vessel plain, soft ones with exudates in view, one clipped a
little more than the others); at the 0.1 percentile of the 650 validation photographs alone,
one photograph decided each limit, and when the rim finder learned to frame one dim EyePACS
photograph the sharpness limit rose from 6.7 to 11.7 and refused 13. Thresholds are limits of
what graders accepted, not model weights, so the training photographs serve; the image check's
least belief in the model's modality is fitted on the validation photographs alone, as the
check trained on the others and is surer of them. The test split and the external sets only
report, every refused photograph listed by name for a person to look at.
Brightness and the field of view are measured on the
field-of-view-standardised picture for a model that standardises it, so the black frame counts
for neither.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from retina_desktop.core.model_card import CheckThresholds
from retina_desktop.core.settings import Settings
from retina_desktop.imaging.checks import judge
from retina_desktop.imaging.decode import load_image
from retina_desktop.inference.model_files import read_sidecar, sidecar_path_for, write_sidecar
from retina_desktop.services.classify import Classifier
from training.classifier.config import FitChecksOptions
from training.classifier.negatives import negatives
from training.classifier.wrong_inputs import wrong_inputs
from training.datasets import load_dataset

logger = logging.getLogger(__name__)


def _evidence(classifier: Classifier, images) -> list[tuple[dict, tuple[int, int], dict | None]]:
    """Statistics, source size and modality probabilities of each (PIL image, size) pair."""
    out = []
    for image, size in images:
        stats, probs = classifier.check_evidence(image)
        out.append((stats, size, probs))
    return out


def _split_images(data: Path, split: str, samples: list | None = None):
    """(picture, source size) of each image of `split` (or of several, "train,val"); the samples
    go into `samples` when given."""
    dataset = load_dataset(data)
    for sample in (s for name in split.split(",") for s in dataset.subset(name)):
        loaded = load_image(dataset.root / sample.file)
        if samples is not None:
            samples.append(sample)
        yield loaded.rgb, loaded.source_size


# The modality model's belief in the model's own modality is never required above this: a
# belief fitted higher would refuse real images for a third decimal of a probability.
MAX_MODALITY_PROBABILITY = 0.95


def fit_modality_probability(evidence, modality: str, percentile: float) -> float:
    """The least belief in the model's modality that a validation image had, at `percentile`
    (as the other limits), kept between 0.5 (the modality model's own decision) and 0.95."""
    beliefs = [e[2].get(modality) for e in evidence if e[2] and modality in e[2]]
    if not beliefs:
        return CheckThresholds().min_modality_probability
    tail = float(np.percentile(beliefs, percentile))
    return round(min(max(tail, 0.5), MAX_MODALITY_PROBABILITY), 3)


def fit_thresholds(evidence, modality: str, percentile: float, unseen=None) -> CheckThresholds:
    """Each limit at `percentile` of the photographs' statistics (the far tail, not the bulk).
    The modality model's belief is fitted on `unseen` (default: `evidence`): photographs the
    modality model did not train on, as it is surer of those it did (fitted on fundus4's
    training photographs too, the least belief rose from 0.5 to 0.8 and refused gradable ones)."""
    stats = {k: np.array([e[0][k] for e in evidence]) for k in evidence[0][0]}
    defaults = CheckThresholds()
    return dataclasses.replace(
        defaults,
        min_modality_probability=fit_modality_probability(evidence if unseen is None else unseen, modality,
                                                          percentile),
        min_brightness=round(float(np.percentile(stats["brightness"], percentile)), 2),
        max_saturated=round(float(max(np.percentile(stats["saturated"], 100 - percentile), 0.02)), 4),
        min_sharpness=round(float(np.percentile(stats["sharpness"], percentile)), 3),
        min_field_of_view=round(float(np.percentile(stats["field_of_view"], percentile)), 3)
        if modality == "fundus"
        else defaults.min_field_of_view,
    )


def flag_rate(evidence, thresholds: CheckThresholds, modality: str) -> tuple[float, dict[str, int]]:
    return _tally(verdicts(evidence, thresholds, modality))


def verdicts(evidence, thresholds: CheckThresholds, modality: str) -> list:
    return [judge(stats, size, thresholds, modality, probs) for stats, size, probs in evidence]


def _tally(results: list) -> tuple[float, dict[str, int]]:
    """The share of verdicts that refused, and how often each reason (its words before any
    figures) was given."""
    reasons: dict[str, int] = {}
    flagged = 0
    for result in results:
        if not result.passed:
            flagged += 1
            for reason in result.reasons:
                key = reason.split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
    return flagged / max(1, len(results)), reasons


def refusals_by_group(evidence, groups: list[str], files: list[str], thresholds: CheckThresholds,
                      modality: str) -> tuple[dict, list[dict]]:
    """Per group (a source, an external set): n, share refused, reasons; and each refused file
    with its full reasons, so that a person can look at every one."""
    results = verdicts(evidence, thresholds, modality)
    table: dict[str, dict] = {}
    refused: list[dict] = []
    for group in sorted(set(groups)):
        members = [result for result, g in zip(results, groups) if g == group]
        rate, reasons = _tally(members)
        table[group] = {"n": len(members), "refused": round(rate, 4), "reasons": reasons}
    for result, group, file in zip(results, groups, files):
        if not result.passed:
            refused.append({"group": group, "file": file, "reasons": result.reasons})
    return table, refused


def external_report(classifier: Classifier, folders: list[str], thresholds: CheckThresholds,
                    modality: str) -> tuple[dict, list[dict]]:
    """Refusals of every image of each external set (never used to fit anything): all of them
    are real photographs of the model's kind, so every refusal is a false one."""
    evidence, groups, files = [], [], []
    for folder in folders:
        dataset = load_dataset(Path(folder))
        for sample in dataset.samples:
            loaded = load_image(dataset.root / sample.file)
            evidence += _evidence(classifier, [(loaded.rgb, loaded.source_size)])
            groups.append(Path(folder).name)
            files.append(f"{folder}/{sample.file}")
    return refusals_by_group(evidence, groups, files, thresholds, modality)


def wrong_input_report(classifier: Classifier, options: FitChecksOptions, thresholds: CheckThresholds, modality: str,
                       side: str) -> dict:
    """Per wrong-input kind of one side: n, share refused and the reasons. The fundus-made kinds
    (red-free, greyscale) come from the fundus data set: `--data` for a fundus model, else
    `--other-modality`."""
    fundus = options.data if modality == "fundus" else options.other_modality
    kinds: dict[str, list] = {}
    for item in wrong_inputs(options.wrong_inputs, side, fundus=fundus, per_kind=PER_KIND[side]):
        kinds.setdefault(item.kind, []).append((item.image, item.image.size))
    out = {}
    for kind, images in kinds.items():
        rate, reasons = flag_rate(_evidence(classifier, images), thresholds, modality)
        out[kind] = {"n": len(images), "refused": round(rate, 4), "reasons": reasons}
    return out


# Fundus photographs made into each red-free or greyscale kind, per side.
PER_KIND = {"val": 40, "test": 100}
# Test photographs per source made into each camera variant (`camera_variants.py`).
VARIANT_PER_SOURCE = 25


def camera_variant_report(classifier: Classifier, data: Path, thresholds: CheckThresholds, modality: str,
                          per_source: int = VARIANT_PER_SOURCE, variants: dict | None = None) -> dict:
    """Per camera variant of real test photographs (a fixed, seeded sample of `per_source` per
    source): n, share refused and the reasons. Every variant is still a fundus photograph, so
    every refusal here is a false one. `variants`: name -> change (default: camera_variants'
    own, which the modality check was taught)."""
    from training.classifier.camera_variants import VARIANTS

    dataset = load_dataset(data)
    rng = np.random.default_rng(0)
    by_source: dict[str, list] = {}
    for sample in dataset.subset("test"):
        by_source.setdefault(sample.source or "all", []).append(sample)
    chosen = [s for _, members in sorted(by_source.items())
              for s in (members[i] for i in sorted(rng.choice(len(members), min(per_source, len(members)),
                                                              replace=False)))]
    originals = [load_image(dataset.root / s.file).rgb for s in chosen]
    out = {}
    for name, make in (VARIANTS if variants is None else variants).items():
        images = ((image, image.size) for image in (make(original) for original in originals))
        rate, reasons = flag_rate(_evidence(classifier, images), thresholds, modality)
        out[name] = {"n": len(originals), "refused": round(rate, 4), "reasons": reasons}
    return out


def run_fit_checks(options: FitChecksOptions) -> dict:
    """`fit-checks`: fit the image checks' limits of `options.model`, measure them and store both
    in its sidecar; returns what was stored."""
    model_path = Path(options.model)
    classifier = Classifier(model_path, settings=Settings(checks_enabled=False), backend="keras")
    metadata = classifier.bundle().metadata
    modality = metadata.modality
    if classifier.modality_classifier() is None:
        logger.warning("warning: no modality model in models/modality/: only image statistics are checked")

    splits = options.fit_splits.split(",")
    fitting = {split: _evidence(classifier, _split_images(Path(options.data), split)) for split in splits}
    unseen = fitting.get("val") or next(iter(fitting.values()))
    thresholds = fit_thresholds([e for split in splits for e in fitting[split]], modality, options.percentile, unseen)
    fitted_n = sum(len(v) for v in fitting.values())
    test_samples: list = []
    test = _evidence(classifier, _split_images(Path(options.data), "test", test_samples))
    test_rate, test_reasons = flag_rate(test, thresholds, modality)
    by_source, test_refused = refusals_by_group(
        test, [s.source or "all" for s in test_samples], [f"{options.data}/{s.file}" for s in test_samples],
        thresholds, modality)
    negative = _evidence(classifier, ((n.image, n.image.size) for n in negatives("test")))
    negative_rate, negative_reasons = flag_rate(negative, thresholds, modality)
    report = {
        "fitted_on": f"{options.fit_splits} images of {options.data} ({fitted_n} images; the image check's least "
                     f"belief on the {len(unseen)} val images alone), limits at the {options.percentile:g} "
                     "percentile" + (" (the least value any of them has)" if options.percentile == 0 else ""),
        "real_test_flagged": round(test_rate, 4),
        "real_test_n": len(test),
        "real_test_reasons": test_reasons,
        "real_test_by_source": by_source,
        "real_test_refused": test_refused,
        "non_retinal_flagged": round(negative_rate, 4),
        "non_retinal_n": len(negative),
        "non_retinal_reasons": negative_reasons,
    }
    if options.other_modality:
        other = _evidence(classifier, _split_images(Path(options.other_modality), "test"))
        other_rate, other_reasons = flag_rate(other, thresholds, modality)
        report.update(
            other_modality_data=options.other_modality,
            other_modality_flagged=round(other_rate, 4),
            other_modality_n=len(other),
            other_modality_reasons=other_reasons,
        )
    if options.wrong_inputs:
        report["wrong_inputs_data"] = options.wrong_inputs
        report["wrong_inputs_val"] = wrong_input_report(classifier, options, thresholds, modality, "val")
        report["wrong_inputs_test"] = wrong_input_report(classifier, options, thresholds, modality, "test")
    if options.external:
        report["external"], report["external_refused"] = external_report(classifier, list(options.external),
                                                                         thresholds, modality)
    if modality == "fundus":
        report["camera_variants_test"] = camera_variant_report(classifier, Path(options.data), thresholds, modality)
    report["command"] = "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report["ms_per_image"] = round(_time_checks(classifier, Path(options.data)), 2)

    sidecar = sidecar_path_for(model_path)
    stored = read_sidecar(sidecar) or metadata
    stored.checks = {"thresholds": thresholds.to_dict(), "report": report}
    write_sidecar(sidecar, stored)
    logger.info(json.dumps(stored.checks, indent=1))
    return stored.checks


def _time_checks(classifier: Classifier, data: Path, n: int = 50) -> float:
    """Median milliseconds that `Classifier.check` adds to one already-decoded image."""
    loaded = [load_image(p) for p in sorted(data.rglob("*.jp*g"))[:n]]
    classifier.check(loaded[0])  # warm: traces the modality model
    times = []
    for image in loaded:
        start = time.perf_counter()
        classifier.check(image)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)
