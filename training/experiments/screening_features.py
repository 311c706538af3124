"""Frozen ImageNet features for the screening probe, pooled several ways and cached per image set.

Owns the feature network of the screening model (`feature_network`): an EfficientNet-Lite
backbone exactly as ImageNet left it, read at two depths and pooled two ways:

- `pool`: the global average of the last feature maps (`last_conv`), what the linear-probe floor
  and the unfamiliar-image flag read;
- `pool_max`: their global maximum: a lesion fills a few cells of a 7 x 7 to 12 x 12 map, and an
  average over the whole fundus dilutes it, a maximum keeps it;
- `mid_pool`, `mid_pool_max`: the same two of the expanded feature maps at stride 16 (the input
  of the first stride-32 block), where a microaneurysm or a haemorrhage is still a cell of its
  own rather than a share of a coarser one.

The fine-tuned models distorted exactly the features that carry to another camera (issue #33;
Kumar et al. 2022), so the network stays frozen and only the head on these features is fitted.
Features are computed once per (image set, backbone, size) and kept in `cache/`, so that heads,
class weightings and thresholds are compared in seconds on the same numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The pools, in the order the network concatenates them; a head may use any subset.
POOLS = ("pool", "pool_max", "mid_pool", "mid_pool_max")
FEATURES_LAYER = "features"


@dataclass(frozen=True)
class Backbone:
    """Which frozen network reads the images, and at what size (fitted with `fit`)."""

    architecture: str = "efficientnet-lite0"
    size: int = 224
    fit: str = "fov"
    weights: str | None = "imagenet"

    def tag(self) -> str:
        """What the cached features depend on. Weights other than ImageNet's are named by their
        contents, so features of one fine-tune are never read back for another."""
        tag = f"{self.architecture}-{self.size}px-{self.fit}"
        if self.weights and self.weights != "imagenet":
            from retina_desktop.inference.litert_backend import file_sha256  # cached per path, size and time

            path = Path(self.weights)
            tag += f"-{path.name}-{file_sha256(path)[:12] if path.is_file() else 'missing'}"
        return tag


def mid_layer_name(model) -> str:
    """The expand activation of the first block that halves stride-16 maps: the richest stride-16
    features (the block's own 6x expansion), just before the last downsampling."""
    from retina_desktop.inference.layers import TARGET_LAYER

    last = model.get_layer(TARGET_LAYER).output.shape[1]
    # Maps of odd sizes halve to ceil(n / 2) ("same" padding), so stride 16 is "larger than the last".
    finer = [layer.name for layer in model.layers
             if layer.name.endswith("_expand_relu") and layer.output.shape[1] > last]
    if not finer:
        raise ValueError(f"{model.name} has no expanded feature maps finer than its last ones")
    return finer[-1]


def feature_network(backbone: Backbone, pools: tuple[str, ...] = POOLS):
    """(image 0..255 -> concatenated pools, the classifier it is cut from): the frozen backbone
    with the chosen pools concatenated as the `features` layer."""
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.inference.layers import TARGET_LAYER
    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import build_classifier

    keras = import_keras()
    config = ClassifierConfig(architecture=backbone.architecture, weights=backbone.weights, height=backbone.size,
                              width=backbone.size, fit=backbone.fit)
    classifier = build_classifier(config, 2)
    last = classifier.get_layer(TARGET_LAYER).output
    mid = classifier.get_layer(mid_layer_name(classifier)).output
    made = {
        "pool": classifier.get_layer("pool").output,
        "pool_max": keras.layers.GlobalMaxPooling2D(name="pool_max")(last),
        "mid_pool": keras.layers.GlobalAveragePooling2D(name="mid_pool")(mid),
        "mid_pool_max": keras.layers.GlobalMaxPooling2D(name="mid_pool_max")(mid),
    }
    chosen = [made[name] for name in pools]
    out = chosen[0] if len(chosen) == 1 else keras.layers.Concatenate(name=FEATURES_LAYER)(chosen)
    return keras.Model(classifier.inputs[0], out, name="screening_features"), classifier


def pool_widths(model, pools: tuple[str, ...] = POOLS) -> dict[str, int]:
    """Each pool's width in the concatenated features."""
    return {name: int(model.get_layer(name).output.shape[-1]) for name in pools}


def pool_columns(widths: dict[str, int], chosen: tuple[str, ...]) -> np.ndarray:
    """Column indices of the `chosen` pools in features concatenated in `widths`' order."""
    columns, start = [], 0
    for name, width in widths.items():
        if name in chosen:
            columns.append(np.arange(start, start + width))
        start += width
    return np.concatenate(columns)


def network_features(network, images: np.ndarray, *, batch_size: int = 32, desc: str = "features") -> np.ndarray:
    """(n, d) float32 features of uint8 images (n x h x w x 3), in batches with a progress bar."""
    from tqdm import tqdm

    rows = []
    for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False):
        batch = images[start : start + batch_size].astype("float32")
        rows.append(np.asarray(network.predict_on_batch(batch), dtype=np.float32))
    return np.concatenate(rows) if rows else np.zeros((0, network.output.shape[-1]), np.float32)


def cached_features(network, images_of, key: str, cache: Path, *, batch_size: int = 32, desc: str = "features"):
    """Features of the images `images_of()` returns (uint8, n x h x w x 3), kept in
    `cache/<key>.npz` so that a second run reads them instead of running the network."""
    from retina_desktop.core.atomic import atomic_save

    path = cache / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.npz"
    if path.is_file():
        with np.load(path) as stored:
            if str(stored["key"]) == key:
                return stored["features"]
    features = network_features(network, images_of(), batch_size=batch_size, desc=desc)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda tmp: np.savez(tmp, key=np.array(key), features=features))
    return features
