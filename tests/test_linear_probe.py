"""The linear probe: a logistic regression on frozen features, written into the network's
`predictions` layer, gives a bundle the app loads and whose probabilities are the regression's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import fundus_like
from training.cli import build_parser
from training.experiments.config import ProbeConfig
from training.experiments.linear_probe import dense_weights, pooled_features, run_probe

TINTS = {"cataract": (60, 160, 200), "glaucoma": (200, 90, 40), "normal": (150, 150, 60)}


def _three_classes(root: Path, per_class: int = 12, size: int = 40) -> Path:
    for c, (label, tint) in enumerate(TINTS.items()):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            fundus_like(size, seed=i + 100 * c, tint=tint).save(root / label / f"{c}{i:02d}_a.png")
    return root


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3])
def test_dense_weights_reproduce_predict_proba_on_raw_features(k):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (60, 5)) * rng.uniform(0.1, 10, 5)
    y = rng.integers(0, k, 60)
    x[:, 0] += y * 2
    mean, scale = x.mean(0), x.std(0)
    regression = LogisticRegression(C=0.5, class_weight="balanced", max_iter=1000).fit((x - mean) / scale, y)
    kernel, bias = dense_weights(regression, mean, scale, k)
    assert kernel.shape == (5, k) and bias.shape == (k,)
    expected = regression.predict_proba((x - mean) / scale)
    assert np.allclose(_softmax(x @ kernel.astype(np.float64) + bias), expected, atol=1e-5)


def test_a_class_absent_from_train_gets_no_probability():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)), np.repeat([0, 2], 20)  # class 1 of 3 has no training image
    regression = LogisticRegression(max_iter=1000).fit(x, y)
    kernel, bias = dense_weights(regression, np.zeros(4), np.ones(4), 3)
    probs = _softmax(x @ kernel.astype(np.float64) + bias)
    assert np.all(probs[:, 1] < 1e-9)
    assert np.allclose(probs[:, [0, 2]], regression.predict_proba(x), atol=1e-5)


def test_cli_knows_the_verb_and_its_defaults():
    args = build_parser().parse_args(["linear-probe", "--data", "d", "--out", "o"])
    assert (args.verb, args.architecture, args.size, args.fit, args.C) == (
        "linear-probe", "efficientnet-lite0", 192, "fov", None
    )


def _probe_and_check(tmp_path: Path, config: ProbeConfig) -> None:
    """Run the probe; refit the regression independently on the saved network's features and
    compare its predict_proba with what the app reports for the test images."""
    from sklearn.linear_model import LogisticRegression

    from retina_desktop.services.classify import Classifier
    from training.datasets import load_arrays, load_dataset

    root = _three_classes(tmp_path / "data")
    out = tmp_path / "probe"
    model_path = run_probe(root, out, config, n_bootstrap=5, log=lambda *_: None)  # CIs are not the point
    for name in ("keras_model.h5", "labels.txt", "keras_model.json", "config.json", "splits.csv",
                 "evaluation/metrics.json"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "keras_model.json").read_text())
    assert sidecar["classes"] == list(TINTS) and sidecar["modality"] == "fundus"
    assert sidecar["input"]["fit"] == config.fit and sidecar["input"]["height"] == config.size
    assert sidecar["provenance"]["command"].startswith("python -m training ")
    assert "macro_auc" in sidecar["metrics"] and sidecar["temperature"] > 0
    chosen_c = json.loads((out / "config.json").read_text())["C"]
    assert chosen_c in config.c_grid

    classifier = Classifier(model_path)  # the app's loader
    bundle = classifier.bundle()
    dataset = load_dataset(root, seed=config.seed)
    spec = bundle.metadata.input
    train = load_arrays(dataset, dataset.subset("train"), spec, progress=False)
    test = load_arrays(dataset, dataset.subset("test"), spec, progress=False)
    x_train = pooled_features(bundle.model, train[0])
    mean, scale = x_train.mean(0), x_train.std(0)
    scale[scale < 1e-12] = 1.0
    regression = LogisticRegression(C=chosen_c, class_weight="balanced", max_iter=config.max_iter,
                                    random_state=config.seed).fit((x_train - mean) / scale, train[1])
    expected = regression.predict_proba((pooled_features(bundle.model, test[0]) - mean) / scale)
    assert np.allclose(classifier.predict_arrays(test[0], calibrated=False), expected, atol=1e-5)
    image = root / "normal" / "200_a.png"
    assert classifier.predict_file(image).label in TINTS


def test_probe_bundle_is_the_regression_and_loads_in_the_app(tmp_path):
    # The small network with random (seeded) weights: the fold is what is tested, not ImageNet.
    _probe_and_check(tmp_path, ProbeConfig(architecture="small", weights=None, size=32, fit="crop",
                                           c_grid=(0.1, 1.0), seed=3))


@pytest.mark.slow
def test_probe_on_imagenet_efficientnet_lite0(tmp_path):
    from retina_desktop.core.errors import UserError
    from training.classifier.import_weights import imagenet_weights

    try:
        imagenet_weights("efficientnet-lite0")
    except UserError as err:
        pytest.skip(str(err))
    _probe_and_check(tmp_path, ProbeConfig(size=32, fit="fov", c_grid=(1.0,)))
