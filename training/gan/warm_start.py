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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from retina_desktop.errors import UserError
from retina_desktop.synthesis.generator_runtime import read_generator_info


def check_source_generator(path: str | Path, labels, size: int, latent_dim: int) -> Path:
    """`path`, after checking from its sidecar alone that it can start this run: before the
    training images are decoded, so that a wrong path costs seconds, not minutes."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--init-generator {path}: no such file")
    info = read_generator_info(path)
    if tuple(info.classes) != tuple(labels):
        raise UserError(f"--init-generator {path}: its classes {', '.join(info.classes)} are not the run's "
                        f"({', '.join(labels)}), in the same order")
    if info.size != size or info.latent_dim != latent_dim:
        raise UserError(f"--init-generator {path}: {info.size} px with a latent of {info.latent_dim}, "
                        f"the run asks for {size} px and {latent_dim}")
    return path


def load_source_generator(path: str | Path, labels, size: int, latent_dim: int):
    """The Keras generator at `path`, after `check_source_generator`."""
    from training.gan.generator_file import load_generator

    generator, _ = load_generator(check_source_generator(path, labels, size, latent_dim))
    return generator


def copy_generator_weights(source, target) -> None:
    """Every layer of `target` takes `source`'s weights of the same name and shapes; a plain
    batch norm's gain and bias become every class's gain and bias. A layer left without weights
    is an error: a half-copied generator is not what was asked for."""
    by_name = {layer.name: layer for layer in source.layers}
    left = {}  # target layers not copied: name -> why
    for layer in target.layers:
        if not layer.weights:
            continue
        old = by_name.get(layer.name)
        if old is None:
            left[layer.name] = f"it has no layer {layer.name!r} to start that layer from"
        elif [tuple(w.shape) for w in old.weights] != [tuple(v.shape) for v in layer.weights]:
            left[layer.name] = f"its layer {layer.name!r} has other shapes; train with the same --width"
        else:
            layer.set_weights(old.get_weights())
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
    source = load_source_generator(path, config.labels, config.size, config.latent_dim)
    copy_generator_weights(source, gan.generator)
    gan.ema_generator.set_weights(gan.generator.get_weights())
