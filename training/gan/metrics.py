"""Judging synthetic images: KID, FID, precision/recall, and a memorisation check.

Features come from the shipped classifier's penultimate layer (`pool`, the global average
pooling before the softmax), not from Inception: no ImageNet network can be downloaded here,
and a retinal classifier's features are at least about retinas. Figures computed with it are
comparable with each other, not with published Inception FID/KID, and are reported as such.

- KID: the unbiased estimate of the squared MMD with the cubic polynomial kernel
  k(x, y) = (x.y / d + 1)^3, averaged over random subsets (Binkowski et al. 2018); unbiased, so
  usable with the few dozen test images of a scarce class.
- FID: the Frechet distance between Gaussians fitted to the two feature sets (biased upwards
  for small n; compare only at equal n).
- Precision / recall: the fraction of synthetic images inside the real images' k-NN manifold,
  and of real images inside the synthetic one (Kynkaanniemi et al. 2019).
- Memorisation: each synthetic image's nearest real training image by feature distance and by
  pixel RMSE. A synthetic image closer to a training image than any real test image is to the
  training set is flagged as a possible copy, and the closest pairs are drawn side by side.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save, atomic_write
from retina_desktop.core.errors import UserError
from retina_desktop.core.model_card import InputSpec
from retina_desktop.core.quiet import import_keras
from training.evaluation.tables import markdown_table
from training.gan.config import GanEvalOptions

logger = logging.getLogger(__name__)
FEATURE_LAYER = "pool"


@functools.lru_cache(maxsize=2)
def _feature_model(model_path: str):
    """(sub-model to the feature layer, the classifier's input spec), loaded once per path."""
    from retina_desktop.inference.bundle import load_bundle

    keras = import_keras()
    bundle = load_bundle(model_path, backend="keras")
    model = bundle.model
    try:
        layer = model.get_layer(FEATURE_LAYER)
    except ValueError as err:
        raise UserError(f'"{model_path}" has no layer named "{FEATURE_LAYER}" to take features from') from err
    return keras.Model(model.inputs[0], layer.output), bundle.metadata.input


def default_classifier() -> Path:
    from retina_desktop.core.paths import default_model_path

    return default_model_path()


def features(images: np.ndarray, model_path: str | Path | None = None, batch_size: int = 64) -> np.ndarray:
    """(n, d) float64 features of uint8 RGB images (any size; fitted to the classifier's input)."""
    from PIL import Image

    from retina_desktop.imaging.preprocessing import fit_image, scale_pixels

    extractor, spec = _feature_model(str(model_path or default_classifier()))
    out = []
    for begin in range(0, len(images), batch_size):
        batch = images[begin : begin + batch_size]
        chunk = [fit_image(Image.fromarray(np.asarray(im, np.uint8)), spec) for im in batch]
        out.append(np.asarray(extractor(scale_pixels(np.stack(chunk), spec.scaling), training=False)))
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def kid(x: np.ndarray, y: np.ndarray, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """(mean, std over subsets) of the unbiased MMD^2 with the cubic polynomial kernel.

    Two independent samples of one distribution score 0 within noise; a set against itself
    scores slightly below 0 (by O(1/m)), because the cross term then pairs points with themselves.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m = min(len(x), len(y), subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]
        b = y[rng.choice(len(y), m, replace=False)]
        k_aa = (a @ a.T / d + 1) ** 3
        k_bb = (b @ b.T / d + 1) ** 3
        k_ab = (a @ b.T / d + 1) ** 3
        # Diagonals dropped: a sample's similarity with itself is what biases the plain MMD.
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        values.append(within - 2 * k_ab.mean())
    return float(np.mean(values)), float(np.std(values))


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets."""
    mu_x, mu_y = x.mean(0), y.mean(0)
    cov_x, cov_y = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    # tr sqrt(Cx Cy) = sum of sqrt(eigenvalues of Cx^1/2 Cy Cx^1/2), a symmetric matrix: stable
    # where scipy's sqrtm warns and drifts, i.e. whenever n < d makes the covariances singular.
    values, vectors = np.linalg.eigh(cov_x)
    root_x = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_x @ cov_y @ root_x), 0, None)).sum()
    return float(max(0.0, np.sum((mu_x - mu_y) ** 2) + np.trace(cov_x) + np.trace(cov_y) - 2 * cross))


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (k-NN manifolds, Kynkaanniemi et al. 2019)."""

    def radii(points):  # distance to the k-th nearest other point (column 0 is the point itself)
        return np.sort(pairwise_distances(points, points), axis=1)[:, min(k, len(points) - 1)]

    real_to_fake = pairwise_distances(real, fake)
    precision = np.mean((real_to_fake <= radii(real)[:, None]).any(axis=0))
    recall = np.mean((real_to_fake <= radii(fake)[None, :]).any(axis=1))
    return float(precision), float(recall)


def nearest(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index, distance) of each query row's nearest reference row."""
    index = pairwise_distances(query, reference).argmin(1)
    # The distance again, directly: scikit-learn's fast form (|x|^2 - 2xy + |y|^2) leaves a
    # residue of rounding for identical rows (1e-7 and more), and a verbatim copy must read as 0.
    difference = query.astype(np.float64) - reference[index].astype(np.float64)
    return index, np.sqrt((difference**2).sum(1))


def _pixels(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def memorisation(
    synth_feats: np.ndarray,
    train_feats: np.ndarray,
    synth_images: np.ndarray,
    train_images: np.ndarray,
    test_feats: np.ndarray | None = None,
) -> dict:
    """Nearest training image of every synthetic one, by features and by pixel RMSE.

    The yardstick is real: how close real test images (new photos of new patients) come to the
    training set. A synthetic image nearer than the nearest of them is flagged.
    """
    feat_index, feat_dist = nearest(synth_feats, train_feats)
    pix_index, pix_dist = nearest(_pixels(synth_images), _pixels(train_images))
    pix_rmse = pix_dist / np.sqrt(synth_images[0].size)
    result = {
        "feature_nn_index": feat_index.tolist(),
        "feature_nn_distance": feat_dist.tolist(),
        "pixel_nn_index": pix_index.tolist(),
        "pixel_nn_rmse": pix_rmse.tolist(),
        "feature_distance_min": float(feat_dist.min()),
        "feature_distance_median": float(np.median(feat_dist)),
        "pixel_rmse_min": float(pix_rmse.min()),
        "pixel_rmse_median": float(np.median(pix_rmse)),
    }
    if test_feats is not None and len(test_feats):
        _, real_dist = nearest(test_feats, train_feats)
        threshold = float(real_dist.min())
        result |= {
            "real_test_distance_min": threshold,
            "real_test_distance_median": float(np.median(real_dist)),
            "possible_copies": int(np.sum(feat_dist < threshold)),
        }
    return result


def save_closest_pairs(
    synth_images: np.ndarray, train_images: np.ndarray, report: dict, path: Path, rows: int = 8
) -> None:
    """Rows of [synthetic | nearest training image by features | by pixels], closest first."""
    from PIL import Image

    order = np.argsort(report["feature_nn_distance"])[:rows]
    strips = [
        np.concatenate(
            [synth_images[i], train_images[report["feature_nn_index"][i]], train_images[report["pixel_nn_index"][i]]],
            axis=1,
        )
        for i in order
    ]
    atomic_save(path, Image.fromarray(np.concatenate(strips, axis=0)).save)


def evaluate_label(
    generator, label_index: int, train: np.ndarray, real: dict, *, n: int, seed: int,
    classifier: str | Path | None, k: int = 3,
) -> tuple[dict, np.ndarray]:
    """All figures for one class: synthetic vs real test, with real train vs test as a yardstick.

    `real` holds the class's real features, "train" and "test" (and "yardstick", the figures of
    train vs test), computed once however many generators are judged against them.
    """
    from training.gan.trainer import sample

    synthetic = sample(generator, np.full(n, label_index, np.int32), seed)
    f_syn = features(synthetic, classifier)
    kid_mean, kid_std = kid(f_syn, real["test"], seed=seed)
    precision, recall = precision_recall(real["test"], f_syn, k=k)
    report = {
        "n_synthetic": n,
        "n_real_train": len(real["train"]),
        "n_real_test": len(real["test"]),
        "kid": kid_mean,
        "kid_std": kid_std,
        "fid": fid(f_syn, real["test"]),
        "precision": precision,
        "recall": recall,
        "real_train_vs_test": real["yardstick"],
        "memorisation": memorisation(f_syn, real["train"], synthetic, train, real["test"]),
    }
    return report, synthetic


def real_features(train: np.ndarray, test: np.ndarray, classifier, seed: int) -> dict:
    f_train, f_test = features(train, classifier), features(test, classifier)
    base_mean, base_std = kid(f_train, f_test, seed=seed)
    return {"train": f_train, "test": f_test,
            "yardstick": {"kid": base_mean, "kid_std": base_std, "fid": fid(f_train, f_test)}}


def load_generators(paths: list[str], fit: str | None) -> list[tuple]:
    """[(path, generator, sidecar)], all loaded and checked to be comparable before any image is
    decoded: one set of real images is fitted for them all (with `fit`, or else the sidecars' own,
    which must then agree; older sidecars name none and mean a crop)."""
    from training.gan.generator_file import load_generator

    def kind(sidecar: dict) -> dict:
        kind = {"classes": sidecar.get("classes"), "size": sidecar.get("size")}
        return kind if fit else kind | {"fit": sidecar.get("fit", "crop")}

    loaded = [(Path(p), *load_generator(p)) for p in paths]
    first = kind(loaded[0][2])
    for path, _, sidecar in loaded[1:]:
        for key, value in kind(sidecar).items():
            if value != first[key]:
                raise UserError(f'"{path}" has {key} {value!r}, "{loaded[0][0]}" has {first[key]!r}: '
                                "judge generators of different kinds in separate runs")
    if len({p.resolve() for p, _, _ in loaded}) < len(loaded):
        raise UserError("a --generator is named twice")
    return loaded


def eval_folder(out: str | None, path: Path, several: bool) -> Path:
    """Where one generator's gan_eval.json goes: `out` (`--out`), or beside the generator; with
    several generators one sub-folder each, named after the generator's folder and file."""
    if not several:
        return Path(out) if out else path.parent / "gan_eval"
    name = f"{path.parent.name}-{path.stem}"
    return Path(out) / name if out else path.parent / f"gan_eval-{path.stem}"


def run_gan_eval(options: GanEvalOptions) -> dict | list[dict]:
    """`gan-eval`: judge each generator against the data set's real images and write its
    gan_eval.json; returns the summary (one per generator, a list when there are several)."""
    from training.datasets import load_arrays, load_dataset
    from training.gan.train import choose_labels

    generators = load_generators(list(options.generator), options.fit)
    sidecar = generators[0][2]
    classes = list(sidecar["classes"])
    size = int(sidecar["size"])
    dataset = load_dataset(options.data)
    labels = choose_labels(classes, options.labels)
    missing = [c for c in labels if c not in dataset.classes]
    if missing:
        raise UserError(f"{options.data} has no class folder for {missing}")
    classifier = Path(options.classifier) if options.classifier else default_classifier()
    several = len(generators) > 1
    folders = {path: eval_folder(options.out, path, several) for path, _, _ in generators}
    if len(set(folders.values())) < len(folders):
        raise UserError("two generators would write their reports to one folder; "
                        "give each its own folder or file name")
    # Real images fitted as the generator's training images were (older sidecars: a crop).
    fit = options.fit or sidecar.get("fit", "crop")
    spec = InputSpec(size, size, fit, "none")
    results = {
        path: {
            "feature_extractor": f'penultimate layer "{FEATURE_LAYER}" of {classifier} (not Inception)',
            "generator": str(path),
            "data": str(options.data),
            "split": options.split,
            "fit": fit,
            "labels": {},
        }
        for path, _, _ in generators
    }
    for label in labels:
        train_samples = [s for s in dataset.subset("train") if s.label == label]
        test_samples = [s for s in dataset.subset(options.split) if s.label == label]
        if len(test_samples) < 2 or len(train_samples) < 2:
            raise UserError(f"{label}: need at least 2 train and 2 {options.split} images in {options.data}")
        train, _ = load_arrays(dataset, train_samples, spec, progress=not options.json)
        test, _ = load_arrays(dataset, test_samples, spec, progress=not options.json)
        real = real_features(train, test, classifier, options.seed)
        for path, generator, _ in generators:
            report, synthetic = evaluate_label(
                generator, classes.index(label), train, real, n=options.n, seed=options.seed, classifier=classifier,
                k=options.k,
            )
            save_closest_pairs(synthetic, train, report["memorisation"], folders[path] / f"closest_pairs_{label}.png")
            results[path]["labels"][label] = report
    for path, result in results.items():
        with atomic_write(folders[path] / "gan_eval.json") as handle:
            json.dump(result, handle, indent=1)
    summaries = [_summary(r) for r in results.values()]
    if options.json:  # the command prints the summary, and nothing else is said
        return summaries if several else summaries[0]
    logger.info(f"features: {next(iter(results.values()))['feature_extractor']}, {options.split} split")
    for path, result in results.items():
        if several:
            logger.info(f"{path}:")
        _log_result(result)
        logger.info(f"wrote gan_eval.json and closest_pairs_*.png to {folders[path]}")
    if several:
        logger.info(kid_table(results, labels))
    return summaries if several else summaries[0]


def _log_result(result: dict) -> None:
    for label, r in result["labels"].items():
        mem = r["memorisation"]
        base = r["real_train_vs_test"]
        logger.info(
            f"{label}: KID {r['kid']:.4f} +- {r['kid_std']:.4f} (real train vs test {base['kid']:.4f}), "
            f"FID {r['fid']:.1f} (real {base['fid']:.1f}), precision {r['precision']:.2f}, recall {r['recall']:.2f}; "
            f"nearest training image: feature distance min {mem['feature_distance_min']:.3g} "
            f"(real test images: min {mem.get('real_test_distance_min', float('nan')):.3g}), "
            f"pixel RMSE min {mem['pixel_rmse_min']:.3f}; "
            f"possible copies {mem.get('possible_copies', 'n/a')} of {r['n_synthetic']}"
        )


def kid_table(results: dict, labels: list[str]) -> str:
    """The generators side by side: KID per class (lower is closer to the real images), the
    possible copies summed over classes, and each row's KIDs relative to the first row's,
    averaged over classes (the first generator named is the baseline)."""
    baseline = next(iter(results.values()))["labels"]
    rows = []
    for path, result in results.items():
        figures = result["labels"]
        ratio = np.mean([figures[label]["kid"] / baseline[label]["kid"] if baseline[label]["kid"] > 0 else np.nan
                         for label in labels])
        copies = sum(figures[label]["memorisation"].get("possible_copies", 0) for label in labels)
        rows.append([path, *(f"{figures[label]['kid']:.3f}" for label in labels), copies, f"{ratio:.2f}"])
    headers = ["generator", *(f"KID {label}" for label in labels), "copies", "KID / first's (mean)"]
    return markdown_table(headers, rows, console=True)


def _summary(results: dict) -> dict:
    """The printed JSON: everything but the per-image lists (those stay in gan_eval.json)."""
    per_image = ("feature_nn_index", "feature_nn_distance", "pixel_nn_index", "pixel_nn_rmse")
    summary = dict(results, labels={})
    for label, r in results["labels"].items():
        mem = {k: v for k, v in r["memorisation"].items() if k not in per_image}
        summary["labels"][label] = dict(r, memorisation=mem)
    return summary
