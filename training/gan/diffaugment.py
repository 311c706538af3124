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

Every random draw is stateless, from an explicit `seed` (a shape-[2] integer tensor), so a
training step is a pure function of (weights, batch, step number) and a resumed run repeats
exactly what an uninterrupted one would have done. Images are float tensors in [-1, 1], NHWC.
"""

from __future__ import annotations

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation,cutout" -> ("color", "translation", "cutout"); "" means none."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")
    return names


def diff_augment(images, seed, policy: str | tuple[str, ...] = POLICIES, probability=1.0):
    """Apply `policy`'s transforms in order, each to every image with probability `probability`.

    `seed` is a shape-[2] int tensor; the same seed gives the same transforms.
    """
    import tensorflow as tf

    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    x = images
    for i, name in enumerate(names):
        sub = tf.random.experimental.stateless_fold_in(seed, i)
        transform = {"color": _color, "translation": _translation, "cutout": _cutout}[name]
        x = _with_probability(x, transform, sub, probability)
    return x


def random_flip(images, seed):
    """Mirror half of the images left-right (for reals only: a mirrored fundus is a real eye)."""
    import tensorflow as tf

    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def adapt_probability(p, real_logits, target: float, batch_size: int, images_to_saturate: float):
    """ADA's heuristic: the new p after one batch, from r_t = E[sign(D(real))].

    r_t near 1 means the discriminator separates every real image: augment more. p moves by
    batch/images_to_saturate per step, so it can go from 0 to 1 in `images_to_saturate` images.
    """
    import tensorflow as tf

    r_t = tf.reduce_mean(tf.sign(tf.cast(real_logits, tf.float32)))
    step = tf.sign(r_t - target) * (batch_size / images_to_saturate)
    return tf.clip_by_value(p + step, 0.0, 1.0)


def _with_probability(x, transform, seed, probability):
    import tensorflow as tf

    if isinstance(probability, (int, float)) and probability >= 1.0:
        return transform(x, seed)
    if isinstance(probability, (int, float)) and probability <= 0.0:
        return x
    gate_seed = tf.random.experimental.stateless_fold_in(seed, 1_000_003)
    apply = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], gate_seed) < probability
    return tf.where(apply, transform(x, seed), x)


def _color(x, seed):
    """Brightness, saturation and contrast, each by a random per-image factor."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 3)
    shape = [tf.shape(x)[0], 1, 1, 1]
    x = x + (tf.random.stateless_uniform(shape, seeds[0]) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (tf.random.stateless_uniform(shape, seeds[1]) * 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (tf.random.stateless_uniform(shape, seeds[2]) + 0.5) + mean


def _translation(x, seed, ratio: float = 0.125):
    """Shift each image by up to `ratio` of its size, filling with zeros (mid-grey in [-1, 1]).

    Gathers from a zero-padded copy: a gather's gradient reaches every source pixel, so the
    generator learns through the shift.
    """
    import tensorflow as tf

    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    pad_h, pad_w = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    seeds = tf.random.experimental.stateless_split(seed, 2)
    dy = tf.random.stateless_uniform([batch, 1], seeds[0], -pad_h, pad_h + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([batch, 1], seeds[1], -pad_w, pad_w + 1, dtype=tf.int32)
    padded = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = tf.range(height)[None, :] + pad_h - dy  # (batch, height) indices into padded rows
    cols = tf.range(width)[None, :] + pad_w - dx
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, cols, axis=2, batch_dims=1)


def _cutout(x, seed, ratio: float = 0.5):
    """Zero a square of `ratio` times the image size at a random place in each image."""
    import tensorflow as tf

    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    cut_h, cut_w = max(1, int(height * ratio + 0.5)), max(1, int(width * ratio + 0.5))
    seeds = tf.random.experimental.stateless_split(seed, 2)
    # Centres over the whole image (as in the paper), so a square may hang off an edge.
    cy = tf.random.stateless_uniform([batch, 1, 1], seeds[0], 0, height, dtype=tf.int32)
    cx = tf.random.stateless_uniform([batch, 1, 1], seeds[1], 0, width, dtype=tf.int32)
    ys = tf.range(height)[None, :, None]
    xs = tf.range(width)[None, None, :]
    inside = (ys >= cy - cut_h // 2) & (ys < cy - cut_h // 2 + cut_h) & (xs >= cx - cut_w // 2) & (
        xs < cx - cut_w // 2 + cut_w
    )
    return x * tf.cast(~inside, x.dtype)[..., None]
