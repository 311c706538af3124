"""The class-conditional GAN: builders, the `ConditionalGAN` trainer, its callbacks and loop.

One generator serves every class: the label's embedding is concatenated with the latent and sets
a per-class gain and bias after every batch norm, so a scarce class borrows what all fundus
photos share (a bright disc on black, vessels) from the plentiful ones. The discriminator is a
projection discriminator (Miyato & Koyama 2018) with spectral normalisation on every
convolution and dense layer, the stabiliser that lets it be trained at the generator's pace
without a gradient penalty, and a minibatch-spread feature against mode collapse; an optional
R1 penalty is there for the non-saturating loss. DiffAugment on both of its inputs
(`diffaugment`) is what keeps it from memorising a few hundred images. Sampling uses an
exponential moving average (EMA) of the generator's weights, which gives visibly smoother images
than the raw generator at any step.

`ConditionalGAN` is a `keras.Model` subclass with its own `compile`, metric trackers and
`train_step` (keras-io's `conditional_gan.py`). Training is `fit()` over a `tf.data` stream
whose order depends only on (seed, epoch), and every random draw in `train_step` is stateless,
keyed by (seed, step counter). The counter, the EMA copy, ADA's probability and both
optimisers' slots are variables of the model, saved in each epoch's checkpoint, so `--resume`
after an interruption reaches the same weights as a run straight through.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.quiet import import_keras, keras_backend
from retina_desktop.inference.generator_runtime import latents, to_uint8
from training.epochs import CheckpointFolder, epoch_callbacks, epoch_stream, last_epoch_of_call
from training.gan.config import GanConfig, parse_policy
from training.gan.diffaugment import adapt_probability, diff_augment, random_flip
from training.jax_steps import BothOptimizers, places, put, take, update_metrics
from training.stateless_random import StatelessRandom

logger = logging.getLogger(__name__)

# The trainer, its layer and its callback below subclass Keras classes, so this module loads
# Keras (quietly) when imported; the verbs that only parse options import it when they run.
keras = import_keras()
if keras_backend() == "tensorflow":
    import tensorflow as tf  # already loaded, quietly, by import_keras

CHECKPOINT_FOLDER = "checkpoint"  # in the run's folder: what `--resume` continues from
# Purposes of the stateless random streams in a step: one seed each, folded with the step.
_LATENT_D, _LATENT_G, _AUG_REAL, _AUG_FAKE_D, _AUG_FAKE_G, _FLIP = range(6)


def _channels(config: GanConfig, resolution: int, width: int = 0) -> int:
    return min(config.max_channels, (width or config.width) * (config.size // resolution))


def _resolutions(config: GanConfig) -> list[int]:
    """8, 16, ..., size: the resolutions the generator upsamples to."""
    return [2**i for i in range(3, int(np.log2(config.size)) + 1)]


def build_generator(config: GanConfig, num_classes: int, name: str = "generator"):
    """(latent (n, latent_dim) floats, label (n,) ints) -> (n, size, size, 3) images in [-1, 1]."""
    layers = keras.layers
    latent = keras.Input((config.latent_dim,), name="latent")
    label = keras.Input((), dtype="int32", name="label")
    embedded = layers.Embedding(num_classes, config.latent_dim, name="label_embedding")(label)
    x = layers.Concatenate(name="latent_and_label")([latent, embedded])
    base = _channels(config, 4)
    x = layers.Dense(4 * 4 * base, use_bias=False, name="project")(x)
    x = layers.Reshape((4, 4, base), name="to_4x4")(x)
    x = _batch_norm(layers, config, num_classes, x, label, base, "4")
    x = layers.ReLU(name="relu_4")(x)
    for res in _resolutions(config):
        # Nearest upsampling + convolution, not transposed convolution: no checkerboard.
        x = layers.UpSampling2D(2, name=f"up_{res}")(x)
        x = layers.Conv2D(_channels(config, res), 3, padding="same", use_bias=False, name=f"conv_{res}")(x)
        x = _batch_norm(layers, config, num_classes, x, label, _channels(config, res), str(res))
        x = layers.ReLU(name=f"relu_{res}")(x)
    x = layers.Conv2D(3, 3, padding="same", name="to_rgb")(x)
    image = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model([latent, label], image, name=name)


def _batch_norm(layers, config: GanConfig, num_classes: int, x, label, channels: int, suffix: str):
    """Batch norm; with `conditional_norm`, its gain and bias looked up by class (from 1 and 0)."""
    if not config.conditional_norm:
        return layers.BatchNormalization(name=f"bn_{suffix}")(x)
    x = layers.BatchNormalization(center=False, scale=False, name=f"bn_{suffix}")(x)
    per_class = {}
    for part, start in (("gain", "ones"), ("bias", "zeros")):
        values = layers.Embedding(num_classes, channels, embeddings_initializer=start,
                                  name=f"{part}_{suffix}")(label)
        per_class[part] = layers.Reshape((1, 1, channels), name=f"map_{part}_{suffix}")(values)
    x = layers.Multiply(name=f"scale_{suffix}")([x, per_class["gain"]])
    return layers.Add(name=f"shift_{suffix}")([x, per_class["bias"]])


def build_discriminator(config: GanConfig, num_classes: int, name: str = "discriminator"):
    """(image (n, size, size, 3) in [-1, 1], label (n,)) -> (n, 1) realness logits.

    Projection: logit = w . phi(x) + embed(y) . phi(x), so the label is judged against the
    image's features rather than merely appended to them.
    """
    layers = keras.layers

    def sn(layer, name):
        """`layer` named `name`, spectrally normalised unless `config.d_spectral_norm` is off."""
        if config.d_spectral_norm:
            return layers.SpectralNormalization(layer, name=name)
        layer.name = name  # not yet in any model, so renaming it is safe
        return layer

    image = keras.Input((config.size, config.size, 3), name="image")
    label = keras.Input((), dtype="int32", name="label")
    x = sn(layers.Conv2D(_channels(config, config.size, config.d_width), 3, padding="same"), name="conv_in")(image)
    x = layers.LeakyReLU(0.2, name="lrelu_in")(x)
    for res in reversed(_resolutions(config)):  # size -> size/2 ... 8 -> 4
        channels = _channels(config, res // 2, config.d_width)
        x = sn(layers.Conv2D(channels, 4, strides=2, padding="same"), name=f"down_{res}")(x)
        x = layers.LeakyReLU(0.2, name=f"lrelu_{res}")(x)
    if config.minibatch_std:
        x = MinibatchStddev(name="batch_spread")(x)
    x = sn(layers.Conv2D(_channels(config, 4, config.d_width), 3, padding="same"), name="conv_4")(x)
    x = layers.LeakyReLU(0.2, name="lrelu_4")(x)
    # Sum, not mean, over the 4 x 4 positions (SN-GAN's global sum pooling). Spectral norm caps
    # every layer's gain at 1, and averaging divides by 16 more: with the mean, the logits of
    # real and generated images stayed within +-0.2 of each other for whole runs (hinge loss
    # at 2.0, a discriminator at chance), so the generator learned from noise.
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    features = layers.Rescaling(4 * 4, name="sum_pool")(features)
    unconditional = sn(layers.Dense(1), name="realness")(features)
    embedded = layers.Embedding(num_classes, _channels(config, 4, config.d_width), name="label_embedding")(label)
    projection = layers.Dot(axes=1, name="projection")([embedded, features])
    logits = layers.Add(name="logits")([unconditional, projection])
    return keras.Model([image, label], logits, name=name)


class MinibatchStddev(keras.layers.Layer):
    """Appends one feature map holding the batch's spread: the standard deviation of each
    feature over the batch, averaged over features and positions (Karras et al. 2018)."""

    def call(self, x):
        spread = keras.ops.mean(keras.ops.sqrt(keras.ops.var(x, axis=0) + 1e-8))
        return keras.ops.concatenate([x, keras.ops.ones_like(x[..., :1]) * spread], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


class ConditionalGAN(keras.Model):
    """Generator, discriminator and the EMA generator, trained together by `fit()`.

    `fit` takes batches of (uint8 images, int labels); fakes are drawn for the same labels,
    so each class is generated as often as it appears in the data.
    """

    def __init__(self, config: GanConfig, num_classes: int, **kwargs):
        super().__init__(name="conditional_gan", **kwargs)
        self.config = config
        self.num_classes = num_classes
        self.generator = build_generator(config, num_classes)
        self.discriminator = build_discriminator(config, num_classes)
        self.ema_generator = build_generator(config, num_classes, name="ema_generator")
        self.ema_generator.set_weights(self.generator.get_weights())
        self.ema_generator.trainable = False
        # int64 where TensorFlow counts (its stateless seeds are int64); JAX runs without 64-bit types.
        self.step_counter = keras.Variable(0, dtype="int64" if keras_backend() == "tensorflow" else "int32",
                                           trainable=False, name="step")
        start_p = 0.0 if config.ada_target > 0 else config.augment_p
        self.augment_p = keras.Variable(start_p, dtype="float32", trainable=False, name="augment_p")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.real_score_tracker = keras.metrics.Mean(name="real_score")
        self.fake_score_tracker = keras.metrics.Mean(name="fake_score")
        self.policy = parse_policy(config.augment)
        self.built = True

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built now, so that a checkpoint's optimiser slots have variables to load into.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.real_score_tracker, self.fake_score_tracker]

    def call(self, inputs, training=False):
        return self.ema_generator(inputs, training=training)

    def _seed(self, purpose: int):
        base = tf.constant([self.config.seed, purpose], dtype=tf.int64)
        return tf.random.experimental.stateless_fold_in(base, self.step_counter.value)

    def _augment(self, images, purpose: int):
        if not self.policy:
            return images
        return diff_augment(images, self._seed(purpose), self.policy, self._probability())

    def _probability(self):
        if self.config.ada_target > 0:
            return self.augment_p.value
        return self.config.augment_p  # a Python float: skips the gate when it is 1

    def train_step(self, data):
        images, labels = data
        config = self.config
        real = tf.cast(images, tf.float32) / 127.5 - 1.0
        if config.xflip:
            real = random_flip(real, self._seed(_FLIP))
        batch = tf.shape(real)[0]
        z = tf.random.stateless_normal([batch, config.latent_dim], self._seed(_LATENT_D))
        fake = self.generator([z, labels], training=True)

        with tf.GradientTape() as tape:
            real_in = self._augment(real, _AUG_REAL)
            if config.r1_gamma > 0:
                with tf.GradientTape() as r1_tape:
                    r1_tape.watch(real_in)
                    real_logits = self.discriminator([real_in, labels], training=True)
                    total = tf.reduce_sum(real_logits)  # on the tape, or its gradient is None
                grads = r1_tape.gradient(total, real_in)
                r1 = 0.5 * config.r1_gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grads), [1, 2, 3]))
            else:
                real_logits = self.discriminator([real_in, labels], training=True)
                r1 = 0.0
            fake_logits = self.discriminator([self._augment(fake, _AUG_FAKE_D), labels], training=True)
            if config.loss == "hinge":
                d_loss = tf.reduce_mean(tf.nn.relu(1 - real_logits)) + tf.reduce_mean(tf.nn.relu(1 + fake_logits))
            else:
                d_loss = tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))
            d_total = d_loss + r1
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(d_total, d_vars), d_vars)

        z = tf.random.stateless_normal([batch, config.latent_dim], self._seed(_LATENT_G))
        with tf.GradientTape() as tape:
            generated = self.generator([z, labels], training=True)
            logits = self.discriminator([self._augment(generated, _AUG_FAKE_G), labels], training=True)
            if config.loss == "hinge":
                g_loss = -tf.reduce_mean(logits)
            else:
                g_loss = tf.reduce_mean(tf.nn.softplus(-logits))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(g_loss, g_vars), g_vars)

        self._update_ema()
        if config.ada_target > 0:
            self.augment_p.assign(
                adapt_probability(self.augment_p.value, real_logits, config.ada_target,
                                  config.batch_size, config.ada_images)
            )
        self.step_counter.assign_add(1)
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.real_score_tracker.update_state(tf.reduce_mean(real_logits))
        self.fake_score_tracker.update_state(tf.reduce_mean(fake_logits))
        logs = {m.name: m.result() for m in self.metrics}
        logs["augment_p"] = self.augment_p.value
        return logs

    def _update_ema(self):
        # Ramped decay: early on the EMA follows the generator closely instead of being
        # dragged towards the random initial weights for thousands of steps.
        step = tf.cast(self.step_counter.value, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        # All weights, moving batch-norm statistics included, in the builders' fixed order.
        for ema, weight in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(decay * ema.value + (1.0 - decay) * tf.cast(weight.value, ema.dtype))


class JaxConditionalGAN(ConditionalGAN):
    """The same GAN trained by Keras's JAX `fit()`, which hands the step its state (every
    variable's value) and takes the new state back instead of letting it assign.

    The discriminator's and the generator's updates, the R1 penalty, DiffAugment (the same
    transforms, JAX's random numbers), ADA, the EMA and the step counter are those of
    `ConditionalGAN.train_step`, written as functions of that state (`stateless_call`,
    `jax.value_and_grad`, each optimiser's `stateless_apply`).

    One difference, spectral normalisation's: on TensorFlow Keras's `SpectralNormalization`
    writes the normalised kernel W/sigma(W) back into its (trainable) variable at every training
    call, and Adam then moves that normalised kernel. A stateless call keeps only non-trainable
    updates, so here the variable stays W, each call uses W/sigma(W), and the gradient reaches W
    through the division: spectral normalisation as Miyato et al. (2018) wrote it, with the power
    iteration's vector carried as on TensorFlow. The discriminator's stored kernels therefore
    differ in scale between backends; the generator, which is what ships, is not normalised.
    """

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(g_optimizer, d_optimizer, **kwargs)
        # Keras's JAX fit() carries the variables of one optimiser (`self.optimizer`) in its state:
        # hand it both, the generator's first.
        self.optimizer = BothOptimizers(g_optimizer, d_optimizer)
        self._places = _StatePlaces(self)

    def train_step(self, state, data):
        import jax
        import jax.numpy as jnp

        trainable, non_trainable, optimizer_values, metric_values = state
        where, config, random = self._places, self.config, StatelessRandom("jax")
        images, labels = data
        step = non_trainable[where.step]

        def seed(purpose):
            return random.seed(config.seed, purpose, step)

        def augment(x, purpose, p):
            return diff_augment(x, seed(purpose), self.policy, p, random) if self.policy else x

        p = non_trainable[where.augment_p] if config.ada_target > 0 else config.augment_p
        g_train, g_fixed = take(trainable, where.g_trainable), take(non_trainable, where.g_fixed)
        d_train, d_fixed = take(trainable, where.d_trainable), take(non_trainable, where.d_fixed)
        g_slots, d_slots = optimizer_values[:where.g_slots], optimizer_values[where.g_slots:]

        real = jnp.asarray(images, "float32") / 127.5 - 1.0
        if config.xflip:
            real = random_flip(real, seed(_FLIP), random)
        batch = real.shape[0]
        z = random.normal((batch, config.latent_dim), seed(_LATENT_D))
        fake, g_fixed = self.generator.stateless_call(g_train, g_fixed, [z, labels], training=True)

        def discriminate(d_train, d_fixed, images):
            return self.discriminator.stateless_call(d_train, d_fixed, [images, labels], training=True)

        def d_objective(d_train, d_fixed):
            real_in = augment(real, _AUG_REAL, p)
            if config.r1_gamma > 0:
                def realness(x):
                    logits, fixed = discriminate(d_train, d_fixed, x)
                    return jnp.sum(logits), (logits, fixed)

                grads, (real_logits, d_fixed) = jax.grad(realness, has_aux=True)(real_in)
                r1 = 0.5 * config.r1_gamma * jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))
            else:
                real_logits, d_fixed = discriminate(d_train, d_fixed, real_in)
                r1 = 0.0
            fake_logits, d_fixed = discriminate(d_train, d_fixed, augment(fake, _AUG_FAKE_D, p))
            if config.loss == "hinge":
                d_loss = jnp.mean(jax.nn.relu(1 - real_logits)) + jnp.mean(jax.nn.relu(1 + fake_logits))
            else:
                d_loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
            return d_loss + r1, (d_loss, real_logits, fake_logits, d_fixed)

        (_, (d_loss, real_logits, fake_logits, d_fixed)), grads = jax.value_and_grad(d_objective, has_aux=True)(
            d_train, d_fixed)
        d_train, d_slots = self.d_optimizer.stateless_apply(d_slots, grads, d_train)

        z = random.normal((batch, config.latent_dim), seed(_LATENT_G))

        def g_objective(g_train, g_fixed, d_fixed):
            generated, g_fixed = self.generator.stateless_call(g_train, g_fixed, [z, labels], training=True)
            logits, d_fixed = discriminate(d_train, d_fixed, augment(generated, _AUG_FAKE_G, p))
            g_loss = -jnp.mean(logits) if config.loss == "hinge" else jnp.mean(jax.nn.softplus(-logits))
            return g_loss, (g_fixed, d_fixed)

        (g_loss, (g_fixed, d_fixed)), grads = jax.value_and_grad(g_objective, has_aux=True)(g_train, g_fixed, d_fixed)
        g_train, g_slots = self.g_optimizer.stateless_apply(g_slots, grads, g_train)

        trainable = put(put(list(trainable), where.g_trainable, g_train), where.d_trainable, d_train)
        non_trainable = put(put(list(non_trainable), where.g_fixed, g_fixed), where.d_fixed, d_fixed)
        # The EMA of every generator weight (moving batch-norm statistics too), decay ramped.
        stepf = jnp.asarray(step, "float32")
        decay = jnp.minimum(config.ema_decay, (1.0 + stepf) / (10.0 + stepf))
        for ema, weight in zip(where.ema, where.g_weights):
            value = (trainable if weight[0] == "t" else non_trainable)[weight[1]]
            non_trainable[ema] = decay * non_trainable[ema] + (1.0 - decay) * jnp.asarray(value, "float32")
        if config.ada_target > 0:
            non_trainable[where.augment_p] = adapt_probability(
                non_trainable[where.augment_p], real_logits, config.ada_target, config.batch_size, config.ada_images)
        non_trainable[where.step] = step + 1

        logs, new_metric_values = update_metrics(
            self.metrics, metric_values, (d_loss, g_loss, jnp.mean(real_logits), jnp.mean(fake_logits)))
        logs["augment_p"] = non_trainable[where.augment_p]
        return logs, (trainable, non_trainable, list(g_slots) + list(d_slots), new_metric_values)


class _StatePlaces:
    """Where each part of the GAN sits in the state lists Keras's JAX `fit()` hands the step."""

    def __init__(self, gan: ConditionalGAN):
        trainable, fixed = gan.trainable_variables, gan.non_trainable_variables
        self.g_trainable = places(gan.generator.trainable_variables, trainable)
        self.g_fixed = places(gan.generator.non_trainable_variables, fixed)
        self.d_trainable = places(gan.discriminator.trainable_variables, trainable)
        self.d_fixed = places(gan.discriminator.non_trainable_variables, fixed)
        trainable_ids = {id(v) for v in trainable}
        self.g_weights = [("t", places([v], trainable)[0]) if id(v) in trainable_ids else ("n", places([v], fixed)[0])
                          for v in gan.generator.weights]
        self.ema = places(gan.ema_generator.weights, fixed)
        self.step, self.augment_p = places([gan.step_counter, gan.augment_p], fixed)
        self.g_slots = len(gan.g_optimizer.variables)


def make_gan(config: GanConfig, num_classes: int):
    """A compiled GAN with freshly initialised, seeded weights: `ConditionalGAN` on TensorFlow,
    `JaxConditionalGAN` on JAX."""
    keras.utils.set_random_seed(config.seed)
    gan = (JaxConditionalGAN if keras_backend() == "jax" else ConditionalGAN)(config, num_classes)
    adam = keras.optimizers.Adam
    gan.compile(
        g_optimizer=adam(config.g_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2),
        d_optimizer=adam(config.d_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2),
    )
    return gan


def sample(generator, labels, seed: int, start: int = 0, batch_size: int = 64) -> np.ndarray:
    """uint8 images from `generator` for `labels`, latent i = latents(seed, start + i)."""
    labels = np.asarray(labels, dtype=np.int32)
    latent_dim = int(generator.inputs[0].shape[-1])
    out = []
    for begin in range(0, len(labels), batch_size):
        chunk = labels[begin : begin + batch_size]
        z = latents(seed, range(start + begin, start + begin + len(chunk)), latent_dim)
        out.append(to_uint8(generator([z, chunk], training=False)))
    return np.concatenate(out) if out else np.zeros((0,) + tuple(generator.outputs[0].shape[1:]), np.uint8)


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
    """(rows * cols, h, w, 3) -> one (rows * h, cols * w, 3) image."""
    n, h, w, c = images.shape
    cols = n // rows
    return images[: rows * cols].reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


class SampleGrid(keras.callbacks.Callback):
    """A PNG per epoch from the EMA generator: one row per class, fixed latents, so the grids of
    successive epochs can be compared image by image. It also logs (to losses.csv) how much the
    grid varies along each axis: the two ways our GANs failed, put in numbers."""

    def __init__(self, folder: Path, num_classes: int, columns: int, seed: int):
        super().__init__()
        self.folder, self.num_classes, self.columns, self.seed = folder, num_classes, columns, seed

    def on_epoch_end(self, epoch, logs=None):
        images = save_grid(self.model.ema_generator, self.num_classes, self.columns, self.seed,
                           self.folder / f"epoch_{epoch + 1:04d}.png")
        if logs is not None:
            logs.update(grid_spread(images, self.num_classes))


def grid_spread(images: np.ndarray, num_classes: int) -> dict[str, float]:
    """Pixel standard deviation (on [0, 1]) of a (classes x columns) grid, averaged:

    - `latent_spread`, across the latents of one class: near 0 when the generator draws one
      image whatever the latent (mode collapse);
    - `label_spread`, across the classes of one latent: near 0 when it ignores the label.
    """
    rows = images.reshape(num_classes, -1, *images.shape[1:]).astype(np.float64) / 255.0
    spread = {"latent_spread": float(rows.std(axis=1).mean())}
    spread["label_spread"] = float(rows.std(axis=0).mean()) if num_classes > 1 else float("nan")
    return spread


def save_grid(generator, num_classes: int, columns: int, seed: int, path: Path) -> np.ndarray:
    """Write a (classes x columns) grid of samples, latent j shared by every row; return them."""
    from PIL import Image

    labels = np.repeat(np.arange(num_classes), columns)
    latent_dim = int(generator.inputs[0].shape[-1])
    z = np.tile(latents(seed, range(columns), latent_dim), (num_classes, 1))
    images = to_uint8(generator([z, labels.astype(np.int32)], training=False))
    atomic_save(path, Image.fromarray(image_grid(images, num_classes)).save)
    return images


def train_gan(
    config: GanConfig,
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    *,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    verbose: int | str = "auto",
    log=logger.info,
    epoch_callbacks_before_checkpoint: tuple = (),
):
    """Train on uint8 `images` (n, size, size, 3) with int `labels`; return (gan, TrainState).

    Writes out_dir/checkpoint/ (resumable state), out_dir/samples/epoch_NNNN.png and
    out_dir/losses.csv. `stop_after_epochs` ends early as if interrupted (tests of resume).
    `epoch_callbacks_before_checkpoint` run after each epoch before its checkpoint is written,
    so that a run killed between the two redoes that epoch and them with it.
    """
    if images.shape[1:] != (config.size, config.size, 3):
        raise ValueError(f"images have shape {images.shape[1:]}, expected {(config.size, config.size, 3)}")
    num_classes = len(config.labels) if config.labels else int(labels.max()) + 1
    if keras_backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()  # JAX's kernels are deterministic as they come
    checkpoint = CheckpointFolder(out_dir / CHECKPOINT_FOLDER)
    gan = make_gan(config, num_classes)
    state = checkpoint.open(gan, config, resume=resume)
    if state.epoch == 0 and config.init_generator:  # a resumed run has its own weights already
        from training.gan.warm_start import warm_start

        warm_start(gan, config.init_generator)
        log(f"generator started from {config.init_generator}")
    last_epoch = last_epoch_of_call(state, config.epochs, stop_after_epochs, log)
    if state.epoch >= last_epoch:
        return gan, state
    labels = labels.astype(np.int32)
    stream, steps = epoch_stream((images, labels), config.batch_size, config.seed, state.epoch, config.epochs,
                                 balance_by=labels if config.balance_classes else None)
    clock, write_checkpoint = epoch_callbacks(state, checkpoint, last_epoch, log)
    gan.fit(
        stream,
        epochs=last_epoch,
        initial_epoch=state.epoch,
        steps_per_epoch=steps,
        verbose=verbose,
        shuffle=False,  # the stream is already in its (seed, epoch) order
        callbacks=[
            clock,
            # Before the logger: the grid adds its spreads to the epoch's logs.
            SampleGrid(out_dir / "samples", num_classes, config.grid_columns, config.seed),
            keras.callbacks.CSVLogger(str(out_dir / "losses.csv"), append=state.epoch > 0),
            *epoch_callbacks_before_checkpoint,
            write_checkpoint,
        ],
    )
    return gan, state
