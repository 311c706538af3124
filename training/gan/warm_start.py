"""Start a GAN's generator from a trained generator's weights (`gan --init-generator`).

Fine-tuning a trained GAN on new data reaches a given quality in a fraction of the steps of
training from random weights (Wang et al. 2018, "Transferring GANs"; Mo et al. 2020, "Freeze
the Discriminator"). On this project's 2-core CPU, three fundus GANs trained from scratch on
fundus4 version 2 (4.5k steps, about two hours each) stayed further from the real images than
the version-1 generator, so the version-1 generator is the obvious starting point.

The weights are matched by layer name. A generator with plain batch norm (one gain and bias per
channel, as the version-1 generator has) can start one with conditional batch norm: every
class's gain and bias start as that one gain and bias, so the new generator begins by drawing
exactly what the old one drew, and can then learn per-class differences. The discriminator
is not transferred (a shipped generator carries none) and starts from random weights.

A run may learn fewer classes than the source knows (`--labels glaucoma` from the four-class
generator): every per-class table (the label embedding, the gains and biases) keeps only the
rows of the run's classes, so the new generator starts by drawing exactly what the source drew
for them. That is how one scarce class gets a generator of its own, one that no other class's
progress can undo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.inference.generator_runtime import read_generator_info


def check_source_generator(path: str | Path, labels, size: int, latent_dim: int) -> Path:
    """`path`, after checking from its sidecar alone that it can start this run: before the
    training images are decoded, so that a wrong path costs seconds, not minutes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init-generator {path}: no such file")
    info = read_generator_info(path)
    parts = info.sidecar.get("provenance", {}).get("parts")
    if parts:  # `gan-combine`'s file holds one generator per part, none of them the whole
        raise UserError(f"--init-generator {path} joins several generators (gan-combine); start from one of "
                        f"its parts: {', '.join(str(part.get('generator')) for part in parts)}")
    source_rows(path, info.classes, labels)
    if info.size != size or info.latent_dim != latent_dim:
        raise UserError(f"--init-generator {path}: {info.size} px with a latent of {info.latent_dim}, "
                        f"the run asks for {size} px and {latent_dim}")
    return path


def source_rows(path, source_classes, labels) -> list[int] | None:
    """The rows of the source's per-class tables that the run's classes take, in the run's order;
    None when the run learns exactly the source's classes (every table copied whole)."""
    if tuple(source_classes) == tuple(labels):
        return None
    missing = [label for label in labels if label not in source_classes]
    if missing:
        raise UserError(f"--init-generator {path}: its classes {', '.join(source_classes)} do not include "
                        f"the run's {', '.join(missing)}")
    return [list(source_classes).index(label) for label in labels]


def load_source_generator(path: str | Path, labels, size: int, latent_dim: int):
    """(The Keras generator at `path`, the rows its per-class tables give the run's classes),
    after `check_source_generator`."""
    from training.gan.generator_file import load_generator

    generator, sidecar = load_generator(check_source_generator(path, labels, size, latent_dim))
    return generator, source_rows(path, sidecar["classes"], labels)


def copy_generator_weights(source, target, rows: list[int] | None = None) -> None:
    """Every layer of `target` takes `source`'s weights of the same name and shapes; a plain
    batch norm's gain and bias become every class's gain and bias; with `rows`, a per-class
    table (an Embedding) takes those rows of the source's. A layer left without weights is an
    error: a half-copied generator is not what was asked for."""
    by_name = {layer.name: layer for layer in source.layers}
    left = {}  # target layers not copied: name -> why
    for layer in target.layers:
        if not layer.weights:
            continue
        old = by_name.get(layer.name)
        if old is None:
            left[layer.name] = f"it has no layer {layer.name!r} to start that layer from"
            continue
        values = old.get_weights()
        if rows is not None and type(layer).__name__ == "Embedding":
            values = [table[rows] for table in values]
        if [tuple(w.shape) for w in values] != [tuple(v.shape) for v in layer.weights]:
            left[layer.name] = f"its layer {layer.name!r} has other shapes; train with the same --width"
        else:
            layer.set_weights(values)
    for norm, (gain, bias) in _per_class_norms(target).items():
        if norm in left and norm in by_name and _has_gain(by_name[norm]):
            _split_batch_norm(by_name[norm], *(target.get_layer(name) for name in (norm, gain, bias)))
            for name in (norm, gain, bias):
                left.pop(name, None)
    if left:
        raise UserError(f"--init-generator: {next(iter(left.values()))}")


def _has_gain(norm) -> bool:
    """Whether batch-norm layer `norm` has its own gain (plain batch norm) or not (conditional)."""
    return any(w.path.endswith("/gamma") for w in norm.weights)


def _per_class_norms(target) -> dict[str, tuple[str, str]]:
    """{batch-norm layer: (its per-class gain layer, bias layer)} for a conditional generator."""
    names = {layer.name for layer in target.layers}
    pairs = {}
    for name in names:
        if name.startswith("bn_"):
            suffix = name[len("bn_"):]
            if f"gain_{suffix}" in names:
                pairs[name] = (f"gain_{suffix}", f"bias_{suffix}")
    return pairs


def _split_batch_norm(old, norm, gain, bias) -> None:
    """Plain batch norm `old` (gamma, beta, moving mean, moving variance) -> a normalise-only
    `norm` with the moving statistics, and class embeddings `gain`, `bias` with gamma and beta
    in every row."""
    values = {w.path.split("/")[-1]: w.numpy() for w in old.weights}
    norm.set_weights([values["moving_mean"], values["moving_variance"]])
    classes = gain.get_weights()[0].shape[0]
    gain.set_weights([np.tile(values["gamma"][None], (classes, 1))])
    bias.set_weights([np.tile(values["beta"][None], (classes, 1))])


def warm_start(gan, path: str | Path) -> None:
    """Load the generator at `path` into `gan`'s generator and its EMA copy."""
    config = gan.config
    source, rows = load_source_generator(path, config.labels, config.size, config.latent_dim)
    copy_generator_weights(source, gan.generator, rows)
    gan.ema_generator.set_weights(gan.generator.get_weights())
