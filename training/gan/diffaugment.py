"""Differentiable augmentation of the discriminator's inputs (DiffAugment, optionally adaptive).

With a few hundred images a discriminator memorises the training set within a few epochs and
the generator's gradients turn to noise. DiffAugment (Zhao et al., NeurIPS 2020) applies the
same family of random colour, translation and cutout transforms to *both* the real and the
generated batch before the discriminator sees them, and does it with differentiable ops so the
generator is trained through the augmentation. Because fakes are augmented too, the generator
has no reason to produce augmented-looking images (the augmentations do not "leak").

ADA (Karras et al., NeurIPS 2020) adds an adaptive probability `p`: each image is augmented
with probability p, raised while the discriminator is overconfident on reals and lowered
otherwise (`adapt_probability`). With p fixed at 1 this is plain DiffAugment.

Every random draw is stateless, from an explicit `seed`, so a training step is a pure function
of (weights, batch, step number) and a resumed run repeats exactly what an uninterrupted one
would have done. The transforms are written once in `keras.ops`; only the random numbers are the
backend's own (`training.stateless_random`): TensorFlow's stateless ops with a shape-[2] integer seed, or
JAX's keys, since the two backends' generators cannot draw the same numbers. Images are float
tensors in [-1, 1], NHWC.
"""

from __future__ import annotations

from retina_desktop.core.quiet import import_keras
from training.gan.config import POLICIES, parse_policy
from training.stateless_random import StatelessRandom


def diff_augment(images, seed, policy: str | tuple[str, ...] = POLICIES, probability=1.0, random=None):
    """Apply `policy`'s transforms in order, each to every image with probability `probability`.

    `seed` is a seed of `random` (a `StatelessRandom`, this backend's by default); the same seed
    gives the same transforms.
    """
    random = random or StatelessRandom()
    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    x = images
    for i, name in enumerate(names):
        sub = random.fold_in(seed, i)
        transform = {"color": _color, "translation": _translation, "cutout": _cutout}[name]
        x = _with_probability(x, transform, sub, probability, random)
    return x


def random_flip(images, seed, random=None):
    """Mirror half of the images left-right (for reals only: a mirrored fundus is a real eye)."""
    ops = import_keras().ops
    random = random or StatelessRandom()
    flip = random.uniform([ops.shape(images)[0], 1, 1, 1], seed) < 0.5
    return ops.where(flip, ops.flip(images, axis=2), images)


def adapt_probability(p, real_logits, target: float, batch_size: int, images_to_saturate: float):
    """ADA's heuristic: the new p after one batch, from r_t = E[sign(D(real))].

    r_t near 1 means the discriminator separates every real image: augment more. p moves by
    batch/images_to_saturate per step, so it can go from 0 to 1 in `images_to_saturate` images.
    """
    ops = import_keras().ops
    r_t = ops.mean(ops.sign(ops.cast(real_logits, "float32")))
    step = ops.sign(r_t - target) * (batch_size / images_to_saturate)
    return ops.clip(p + step, 0.0, 1.0)


def _with_probability(x, transform, seed, probability, random):
    if isinstance(probability, (int, float)) and probability >= 1.0:
        return transform(x, seed, random)
    if isinstance(probability, (int, float)) and probability <= 0.0:
        return x
    ops = import_keras().ops
    gate_seed = random.fold_in(seed, 1_000_003)
    apply = random.uniform([ops.shape(x)[0], 1, 1, 1], gate_seed) < probability
    return ops.where(apply, transform(x, seed, random), x)


def _color(x, seed, random):
    """Brightness, saturation and contrast, each by a random per-image factor."""
    ops = import_keras().ops
    seeds = random.split(seed, 3)
    shape = [ops.shape(x)[0], 1, 1, 1]
    x = x + (random.uniform(shape, seeds[0]) - 0.5)
    mean = ops.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (random.uniform(shape, seeds[1]) * 2.0) + mean
    mean = ops.mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (random.uniform(shape, seeds[2]) + 0.5) + mean


def _translation(x, seed, random, ratio: float = 0.125):
    """Shift each image by up to `ratio` of its size, filling with zeros (mid-grey in [-1, 1]).

    Gathers from a zero-padded copy: a gather's gradient reaches every source pixel, so the
    generator learns through the shift.
    """
    ops = import_keras().ops
    batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
    pad_h, pad_w = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    seeds = random.split(seed, 2)
    dy = random.uniform([batch, 1], seeds[0], -pad_h, pad_h + 1, dtype="int32")
    dx = random.uniform([batch, 1], seeds[1], -pad_w, pad_w + 1, dtype="int32")
    padded = ops.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = ops.arange(height, dtype="int32")[None, :] + pad_h - dy  # (batch, height) indices into padded rows
    cols = ops.arange(width, dtype="int32")[None, :] + pad_w - dx
    shifted = ops.take_along_axis(padded, rows[:, :, None, None], axis=1)
    return ops.take_along_axis(shifted, cols[:, None, :, None], axis=2)


def _cutout(x, seed, random, ratio: float = 0.5):
    """Zero a square of `ratio` times the image size at a random place in each image."""
    ops = import_keras().ops
    batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
    cut_h, cut_w = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    seeds = random.split(seed, 2)
    # Centres over the whole image (as in the paper), so a square may hang off an edge.
    cy = random.uniform([batch, 1, 1], seeds[0], 0, height, dtype="int32")
    cx = random.uniform([batch, 1, 1], seeds[1], 0, width, dtype="int32")
    ys = ops.arange(height, dtype="int32")[None, :, None]
    xs = ops.arange(width, dtype="int32")[None, None, :]
    inside = (ys >= cy - cut_h // 2) & (ys < cy - cut_h // 2 + cut_h) & (xs >= cx - cut_w // 2) & (
        xs < cx - cut_w // 2 + cut_w
    )
    return x * ops.cast(~inside, x.dtype)[..., None]
