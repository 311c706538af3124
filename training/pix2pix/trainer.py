"""pix2pix for vessel mask -> fundus photograph: builders, the `Pix2Pix` trainer, its loop.

Isola et al. 2017 ("Image-to-image translation with conditional adversarial networks"): a U-Net
generator with skip connections carries the vessel layout straight to the output, a PatchGAN
discriminator judges overlapping patches of (input, photograph) pairs, and the generator's
loss is the adversarial term plus 100 x L1 to the real photograph. Here the L1 counts the
field of view fully and the black surround at `outside_weight` (it is trivial to learn and
says nothing about the retina). The generator's input is `retina_desktop.services.vessel_synthesis`'s
contract: vessel mask, field of view, one-hot colour-style planes.

Sized for a CPU: at 256 x 256 the default U-Net (width 32, 7 halvings to 2 x 2, at most 256
channels) costs about 1.6 GMAC per image forward, the 3-layer PatchGAN about 0.8.

`Pix2Pix` is a `keras.Model` subclass with its own `compile`, metric trackers and `train_step`.
Training is `fit()` over a stream whose order depends only on (seed, epoch); augmentation and
dropout draw from stateless random numbers keyed by (seed, step). The step counter, both
optimisers' slots and the batch-norm statistics are saved in each epoch's checkpoint, so
`--resume` reaches the same weights as a run straight through.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from retina_desktop.core.atomic import atomic_save
from retina_desktop.core.quiet import import_keras, keras_backend
from retina_desktop.services.vessel_synthesis import to_uint8
from training.epochs import CheckpointFolder, epoch_callbacks, epoch_stream, last_epoch_of_call
from training.jax_steps import BothOptimizers, places, put, take, update_metrics
from training.pix2pix.config import Pix2PixConfig
from training.pix2pix.data import augment, style_indices
from training.stateless_random import StatelessRandom

logger = logging.getLogger(__name__)

# The trainer, its learning-rate schedule and its callback below subclass Keras classes, so this
# module loads Keras (quietly) when imported; the verbs that only parse options do not import it.
keras = import_keras()
if keras_backend() == "tensorflow":
    import tensorflow as tf  # already loaded, quietly, by import_keras

# Purposes of the stateless random streams in a step.
_AUGMENT, _DROPOUT = range(2)


def build_unet_generator(
    size: int,
    channels_in: int,
    width: int = 32,
    *,
    levels: int = 7,
    max_channels: int = 256,
    dropout: float = 0.5,
    name: str = "generator",
):
    """(n, size, size, channels_in) masks -> (n, size, size, 3) photographs in [-1, 1].

    Encoder: `levels` 4x4 stride-2 convolutions (batch norm after the first, leaky ReLU);
    decoder: 4x4 stride-2 transposed convolutions, each followed by the encoder's feature map of
    the same resolution (the U-Net skips). Dropout in the three deepest decoder blocks while
    training (Isola et al. use it as the generator's noise; here it is mainly a regulariser).
    """
    layers = keras.layers
    if size % (2**levels):
        raise ValueError(f"size {size} must be a multiple of 2 ** levels = {2 ** levels}")
    masks = keras.Input((size, size, channels_in), name="masks")
    x, skips = masks, []
    for i in range(levels):
        x = layers.Conv2D(min(max_channels, width * 2**i), 4, strides=2, padding="same",
                          use_bias=i == 0, name=f"down_{i}")(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"down_bn_{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"down_act_{i}")(x)
        skips.append(x)
    for i in reversed(range(levels - 1)):
        x = layers.Conv2DTranspose(min(max_channels, width * 2**i), 4, strides=2, padding="same",
                                   use_bias=False, name=f"up_{i}")(x)
        x = layers.BatchNormalization(name=f"up_bn_{i}")(x)
        if dropout > 0 and i >= levels - 4:
            x = layers.Dropout(dropout, name=f"up_dropout_{i}")(x)
        x = layers.ReLU(name=f"up_act_{i}")(x)
        x = layers.Concatenate(name=f"skip_{i}")([x, skips[i]])
    x = layers.Conv2DTranspose(3, 4, strides=2, padding="same", name="to_rgb")(x)
    image = layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(masks, image, name=name)


def build_patch_discriminator(
    size: int,
    channels_in: int,
    width: int = 32,
    *,
    layers_strided: int = 3,
    max_channels: int = 256,
    name: str = "discriminator",
):
    """(masks (n, S, S, channels_in), photograph (n, S, S, 3)) -> (n, S/2^k, S/2^k, 1) logits.

    PatchGAN: each logit judges one receptive field (70 x 70 pixels for k = 3) of the pair, so
    the generator is pushed towards locally realistic texture while L1 handles the layout.
    Instance normalisation: a sample's verdict never depends on the rest of its batch.
    """
    layers = keras.layers
    masks = keras.Input((size, size, channels_in), name="masks")
    photo = keras.Input((size, size, 3), name="photo")
    x = layers.Concatenate(name="pair")([masks, photo])
    x = layers.Conv2D(width, 4, strides=2, padding="same", name="conv_0")(x)
    x = layers.LeakyReLU(0.2, name="act_0")(x)
    for i in range(1, layers_strided + 1):
        stride = 2 if i < layers_strided else 1
        x = layers.Conv2D(min(max_channels, width * 2**i), 4, strides=stride, padding="same",
                          use_bias=False, name=f"conv_{i}")(x)
        x = layers.GroupNormalization(groups=-1, name=f"norm_{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"act_{i}")(x)
    logits = layers.Conv2D(1, 4, padding="same", dtype="float32", name="logits")(x)
    return keras.Model([masks, photo], logits, name=name)


class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, then linearly to 0 over the last (1 - decay_from) of the steps (Isola et al.)."""

    def __init__(self, rate: float, total_steps: int, decay_from: float):
        self.rate, self.total, self.start = rate, float(max(1, total_steps)), decay_from * max(1, total_steps)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        left = ops.clip((self.total - step) / max(1.0, self.total - self.start), 0.0, 1.0)
        return self.rate * left

    def get_config(self):
        return {"rate": self.rate, "total_steps": self.total, "decay_from": self.start / self.total}


class Pix2Pix(keras.Model):
    """Generator and PatchGAN discriminator trained together by `fit()` on
    (masks (n, S, S, C) float32, photographs (n, S, S, 3) uint8) batches."""

    def __init__(self, config: Pix2PixConfig, **kwargs):
        super().__init__(name="pix2pix", **kwargs)
        self.config = config
        self.generator = build_unet_generator(
            config.size, config.channels_in, config.width, levels=config.levels,
            max_channels=config.max_channels, dropout=config.dropout,
        )
        self.discriminator = build_patch_discriminator(
            config.size, config.channels_in, config.d_width, layers_strided=config.d_layers,
            max_channels=config.max_channels,
        )
        # int64 where TensorFlow counts (its stateless seeds are int64); JAX runs without 64-bit types.
        self.step_counter = keras.Variable(0, dtype="int64" if keras_backend() == "tensorflow" else "int32",
                                           trainable=False, name="step")
        self.trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ("d_loss", "g_adversarial", "l1", "real_score", "fake_score")
        }
        self.built = True

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        # Built now, so that a checkpoint's optimiser slots have variables to load into.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _seed(self, purpose: int):
        base = tf.constant([self.config.seed, purpose], dtype=tf.int64)
        return tf.random.experimental.stateless_fold_in(base, self.step_counter.value)

    def _reseed_dropout(self):
        # Keras dropout draws from its layers' seed-generator states, which a checkpoint
        # does not hold; setting them from (seed, step) keeps a resumed run exact.
        states = [layer.seed_generator.state for layer in self.generator.layers
                  if isinstance(layer, keras.layers.Dropout)]
        if states:
            seeds = tf.random.experimental.stateless_split(self._seed(_DROPOUT), len(states))
            for state, seed in zip(states, tf.unstack(seeds)):
                state.assign(tf.cast(seed % (2**31), state.dtype))

    def train_step(self, data):
        sources, photos = data
        config = self.config
        targets = tf.cast(photos, tf.float32) / 127.5 - 1.0
        if config.hflip or config.vflip or config.rotate_degrees or config.zoom:
            sources, targets = augment(sources, targets, self._seed(_AUGMENT), hflip=config.hflip,
                                       vflip=config.vflip, rotate_degrees=config.rotate_degrees, zoom=config.zoom)
        self._reseed_dropout()
        fov = sources[..., 1:2]
        weight = fov + config.outside_weight * (1.0 - fov)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(sources, training=True)
            real_logits = self.discriminator([sources, targets], training=True)
            fake_logits = self.discriminator([sources, fake], training=True)
            d_loss = 0.5 * (
                tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(real_logits), real_logits))
                + tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits))
            )
            adversarial = tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits)
            )
            l1 = tf.reduce_sum(weight * tf.abs(fake - targets)) / (3.0 * tf.reduce_sum(weight))
            g_loss = config.adversarial_weight * adversarial + config.l1_weight * l1
        d_vars = self.discriminator.trainable_variables
        g_vars = self.generator.trainable_variables
        # Both gradients from one forward pass, taken before either network moves.
        d_grads = d_tape.gradient(d_loss, d_vars)
        g_grads = g_tape.gradient(g_loss, g_vars)
        self.d_optimizer.apply(d_grads, d_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        self.step_counter.assign_add(1)
        for name, value in (("d_loss", d_loss), ("g_adversarial", adversarial), ("l1", l1),
                            ("real_score", tf.reduce_mean(real_logits)),
                            ("fake_score", tf.reduce_mean(fake_logits))):
            self.trackers[name].update_state(value)
        return {m.name: m.result() for m in self.metrics}


class JaxPix2Pix(Pix2Pix):
    """The same pix2pix, step for step, trained by Keras's JAX `fit()`, which hands the step its
    state (every variable's value) and takes the new state back instead of letting it assign:
    the augmentation (the same transform, JAX's random numbers), dropout drawn from (seed, step),
    one forward pass and both networks' gradients from it, each optimiser's `stateless_apply`."""

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(g_optimizer, d_optimizer, **kwargs)
        # Keras's JAX fit() carries the variables of one optimiser: hand it both, the generator's first.
        self.optimizer = BothOptimizers(g_optimizer, d_optimizer)
        trainable, fixed = self.trainable_variables, self.non_trainable_variables
        self._places = {
            "g_train": places(self.generator.trainable_variables, trainable),
            "g_fixed": places(self.generator.non_trainable_variables, fixed),
            "d_train": places(self.discriminator.trainable_variables, trainable),
            "d_fixed": places(self.discriminator.non_trainable_variables, fixed),
            # Each dropout layer's seed-generator state, among the generator's own fixed values.
            "dropout": places([layer.seed_generator.state for layer in self.generator.layers
                               if isinstance(layer, keras.layers.Dropout)], self.generator.non_trainable_variables),
            "step": places([self.step_counter], fixed)[0],
            "g_slots": len(g_optimizer.variables),
        }

    def train_step(self, state, data):
        import jax
        import jax.numpy as jnp

        trainable, non_trainable, optimizer_values, metric_values = state
        where, config, random = self._places, self.config, StatelessRandom("jax")
        sources, photos = data
        step = non_trainable[where["step"]]
        sources = jnp.asarray(sources, "float32")
        targets = jnp.asarray(photos, "float32") / 127.5 - 1.0
        if config.hflip or config.vflip or config.rotate_degrees or config.zoom:
            sources, targets = augment(sources, targets, random.seed(config.seed, _AUGMENT, step), hflip=config.hflip,
                                       vflip=config.vflip, rotate_degrees=config.rotate_degrees, zoom=config.zoom,
                                       random=random)
        g_train, g_fixed = take(trainable, where["g_train"]), take(non_trainable, where["g_fixed"])
        d_train, d_fixed = take(trainable, where["d_train"]), take(non_trainable, where["d_fixed"])
        if where["dropout"]:  # as Pix2Pix._reseed_dropout: from (seed, step), so a resumed run is exact
            keys = random.split(random.seed(config.seed, _DROPOUT, step), len(where["dropout"]))
            for place, key in zip(where["dropout"], keys):  # keys are (2,) uint32 arrays, as the states
                g_fixed[place] = (key % jnp.uint32(2**31)).astype(self.generator.non_trainable_variables[place].dtype)
        fov = sources[..., 1:2]
        weight = fov + config.outside_weight * (1.0 - fov)

        def losses(g_train, d_train):
            fake, new_g_fixed = self.generator.stateless_call(g_train, g_fixed, sources, training=True)
            real_logits, _ = self.discriminator.stateless_call(d_train, d_fixed, [sources, targets], training=True)
            fake_logits, _ = self.discriminator.stateless_call(d_train, d_fixed, [sources, fake], training=True)
            # Sigmoid cross-entropy with labels 1 (softplus(-x)) and 0 (softplus(x)).
            d_loss = 0.5 * (jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits)))
            adversarial = jnp.mean(jax.nn.softplus(-fake_logits))
            l1 = jnp.sum(weight * jnp.abs(fake - targets)) / (3.0 * jnp.sum(weight))
            g_loss = config.adversarial_weight * adversarial + config.l1_weight * l1
            return (d_loss, g_loss), (adversarial, l1, real_logits, fake_logits, new_g_fixed)

        # Both gradients from one forward pass, taken before either network moves.
        (d_loss, _), backward, (adversarial, l1, real_logits, fake_logits, g_fixed) = jax.vjp(
            losses, g_train, d_train, has_aux=True)
        _, d_grads = backward((jnp.ones(()), jnp.zeros(())))
        g_grads, _ = backward((jnp.zeros(()), jnp.ones(())))
        g_slots, d_slots = optimizer_values[:where["g_slots"]], optimizer_values[where["g_slots"]:]
        d_train, d_slots = self.d_optimizer.stateless_apply(d_slots, d_grads, d_train)
        g_train, g_slots = self.g_optimizer.stateless_apply(g_slots, g_grads, g_train)

        trainable = put(put(list(trainable), where["g_train"], g_train), where["d_train"], d_train)
        non_trainable = put(list(non_trainable), where["g_fixed"], g_fixed)
        non_trainable[where["step"]] = step + 1
        logs, new_metric_values = update_metrics(
            self.metrics, metric_values, (d_loss, adversarial, l1, jnp.mean(real_logits), jnp.mean(fake_logits)))
        return logs, (trainable, non_trainable, list(g_slots) + list(d_slots), new_metric_values)


def make_pix2pix(config: Pix2PixConfig, steps_per_epoch: int):
    """A compiled pix2pix with freshly initialised, seeded weights: `Pix2Pix` on TensorFlow,
    `JaxPix2Pix` on JAX."""
    keras.utils.set_random_seed(config.seed)
    model = (JaxPix2Pix if keras_backend() == "jax" else Pix2Pix)(config)
    total = config.epochs * steps_per_epoch

    def adam():
        return keras.optimizers.Adam(LinearDecay(config.learning_rate, total, config.decay_from),
                                     beta_1=config.beta_1, beta_2=config.beta_2)

    model.compile(g_optimizer=adam(), d_optimizer=adam())
    return model


def mask_preview(sources: np.ndarray) -> np.ndarray:
    """Generator inputs -> uint8 RGB pictures: vessels white, field of view dark grey."""
    vessels, fov = sources[..., 0] > 0.5, sources[..., 1] > 0.5
    grey = np.where(vessels, 255, np.where(fov, 48, 0)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def generate(generator, sources: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """uint8 photographs for generator inputs (inference mode: no dropout, stored BN statistics)."""
    out = [to_uint8(generator(sources[i : i + batch_size], training=False)) for i in range(0, len(sources), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,) + tuple(sources.shape[1:3]) + (3,), np.uint8)


def triptych_grid(sources: np.ndarray, generated: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """One row per sample: mask | generated | real, as one uint8 image."""
    rows = [np.concatenate([m, g, e], axis=1) for m, g, e in zip(mask_preview(sources), generated, expected)]
    return np.concatenate(rows, axis=0)


class SampleGrid(keras.callbacks.Callback):
    """A PNG per epoch, one row per fixed training pair: mask | generated | real."""

    def __init__(self, folder: Path, sources: np.ndarray, targets: np.ndarray):
        super().__init__()
        self.folder, self.sources, self.targets = folder, sources, targets

    def on_epoch_end(self, epoch, logs=None):
        from PIL import Image

        grid = triptych_grid(self.sources, generate(self.model.generator, self.sources), self.targets)
        atomic_save(self.folder / f"epoch_{epoch + 1:04d}.png", Image.fromarray(grid).save)


def grid_indices(styles_of_samples: np.ndarray, rows: int) -> np.ndarray:
    """`rows` sample indices spread over the styles (round robin, first files first)."""
    by_style = [list(np.flatnonzero(styles_of_samples == s)) for s in np.unique(styles_of_samples)]
    chosen: list[int] = []
    while len(chosen) < rows and any(by_style):
        for members in by_style:
            if members and len(chosen) < rows:
                chosen.append(int(members.pop(0)))
    return np.array(sorted(chosen), dtype=np.int64)


def train_pix2pix(
    config: Pix2PixConfig,
    sources: np.ndarray,
    targets: np.ndarray,
    out_dir: Path,
    *,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    verbose: int | str = "auto",
    log=logger.info,
):
    """Train on generator inputs `sources` (n, S, S, C) and uint8 `targets` (n, S, S, 3);
    return (model, TrainState).

    Writes out_dir/checkpoint/ (resumable state), out_dir/samples/epoch_NNNN.png and
    out_dir/losses.csv. `stop_after_epochs` ends early as if interrupted (tests of resume).
    """
    expected = (config.size, config.size, config.channels_in)
    if sources.ndim != 4 or sources.shape[1:] != expected:
        raise ValueError(f"inputs have shape {sources.shape[1:]}, expected {expected}")
    if targets.shape != sources.shape[:3] + (3,):
        raise ValueError(f"photographs have shape {targets.shape}, expected {sources.shape[:3] + (3,)}")
    if keras_backend() == "tensorflow":
        tf.config.experimental.enable_op_determinism()  # JAX's kernels are deterministic as they come
    checkpoint = CheckpointFolder(out_dir / "checkpoint")
    _, steps = epoch_stream((sources, targets), config.batch_size, config.seed, 0, config.epochs)
    model = make_pix2pix(config, steps)
    state = checkpoint.open(model, config, resume=resume)
    last_epoch = last_epoch_of_call(state, config.epochs, stop_after_epochs, log)
    if state.epoch >= last_epoch:
        return model, state
    stream, steps = epoch_stream((sources, targets), config.batch_size, config.seed, state.epoch, config.epochs)
    shown = grid_indices(style_indices(sources), config.grid_rows)
    clock, write_checkpoint = epoch_callbacks(state, checkpoint, last_epoch, log)
    model.fit(
        stream,
        epochs=last_epoch,
        initial_epoch=state.epoch,
        steps_per_epoch=steps,
        verbose=verbose,
        shuffle=False,  # the stream is already in its (seed, epoch) order
        callbacks=[
            keras.callbacks.ProgbarLogger(),  # first, so each epoch's bar ends before the clock prints
            clock,
            keras.callbacks.CSVLogger(str(out_dir / "losses.csv"), append=state.epoch > 0),
            SampleGrid(out_dir / "samples", sources[shown], targets[shown]),
            write_checkpoint,
        ],
    )
    return model, state
