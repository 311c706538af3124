"""Stateless random numbers on Keras's backend: the draws the adversarial trainers' steps make.

A training step keyed by (seed, purpose, step number) draws the same numbers whenever it runs, so a
resumed run repeats exactly what an uninterrupted one did. TensorFlow and JAX each have such a
generator (TensorFlow's stateless ops with a shape-[2] int64 seed, JAX's PRNG keys), and they cannot
draw the same numbers: the transforms that use them are written once (`keras.ops`), the draws here.
"""

from __future__ import annotations

from retina_desktop.core.quiet import keras_backend


class StatelessRandom:
    """The few stateless random draws DiffAugment and the trainers need, on this backend: TensorFlow
    (seeds are shape-[2] int64 tensors) or JAX (seeds are PRNG keys)."""

    def __init__(self, backend: str | None = None):
        self.backend = backend or keras_backend()
        if self.backend == "tensorflow":
            import tensorflow as tf

            self._tf = tf
        elif self.backend == "jax":
            import jax

            self._jax = jax
        else:
            raise ValueError(f"stateless random draws on the {self.backend} backend are not written")

    def seed(self, seed: int, purpose: int, step):
        """The seed of one stream (`purpose`) at training step `step` (a tensor)."""
        if self.backend == "tensorflow":
            tf = self._tf
            return tf.random.experimental.stateless_fold_in(tf.constant([seed, purpose], dtype=tf.int64), step)
        jax = self._jax
        return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), purpose), step)

    def fold_in(self, seed, data: int):
        if self.backend == "tensorflow":
            return self._tf.random.experimental.stateless_fold_in(seed, data)
        return self._jax.random.fold_in(seed, data)

    def split(self, seed, count: int):
        if self.backend == "tensorflow":
            return self._tf.unstack(self._tf.random.experimental.stateless_split(seed, count))
        return list(self._jax.random.split(seed, count))

    def uniform(self, shape, seed, low=0.0, high=1.0, dtype="float32"):
        """Floats in [low, high), or with an integer `dtype` whole numbers in [low, high)."""
        if self.backend == "tensorflow":
            tf = self._tf
            if dtype == "int32":
                return tf.random.stateless_uniform(shape, seed, low, high, dtype=tf.int32)
            return tf.random.stateless_uniform(shape, seed, low, high)
        jax = self._jax
        if dtype == "int32":
            return jax.random.randint(seed, shape, low, high, dtype="int32")
        return jax.random.uniform(seed, shape, minval=low, maxval=high)

    def normal(self, shape, seed):
        if self.backend == "tensorflow":
            return self._tf.random.stateless_normal(shape, seed)
        return self._jax.random.normal(seed, shape)
