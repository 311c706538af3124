"""Classifier builders and its training run.

`build_classifier` returns the inference model the app ships: 0..255 RGB in, class
probabilities out, pixel scaling inside the network (so the app and training cannot disagree),
and a named last convolution (`last_conv`) that heatmaps read. Training wraps it in an
augmentation front end (`build_trainer`) and runs the resumable loop every trainer shares
(epochs.py): one `fit()`, checkpointed after every epoch, so that `--resume` continues an
interrupted run to the same weights, bit for bit. What is the classifier's own rides on that
loop as callbacks: each epoch's cosine learning rate and random state, its judgement on the
validation set (macro AUC), early stopping and the best epoch's weights. Everything random in an
epoch (order, camera draws, augmentation layers, dropout) is drawn from (seed, epoch).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from retina_desktop.core.quiet import import_keras, keras_backend
from retina_desktop.imaging.augmentation import AugmentConfig, build_augmenter, random_gamma_layer
from retina_desktop.imaging.camera_augment import CameraAugmentConfig, camera_augment_batch
from training import distribute
from training.classifier.config import ARCHITECTURES, RESUMABLE_FIELDS, ClassifierConfig
from training.epochs import CheckpointFolder, TrainState, epoch_callbacks, last_epoch_of_call
from training.evaluation.metrics import macro_auc

logger = logging.getLogger(__name__)

LAST_CONV = "last_conv"


def build_classifier(config: ClassifierConfig, num_classes: int, name: str = "retina_classifier"):
    """The inference model for `config`: (h, w, 3) floats in 0..255 -> softmax probabilities."""
    if config.architecture not in ARCHITECTURES:
        raise UserError(f"Unknown architecture {config.architecture!r}; choose from {ARCHITECTURES}")
    keras = import_keras()
    inputs = keras.Input((config.height, config.width, 3), name="image")
    x = inputs
    if config.local_contrast:
        from training.classifier.local_contrast import local_contrast

        x = local_contrast(keras, inputs, min(config.height, config.width))
    if config.architecture == "small":
        features = _small_backbone(keras, x, config.width_multiplier)
    else:
        features = _transfer_backbone(keras, x, config)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    pooled = keras.layers.Dropout(config.dropout, name="dropout")(pooled)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(pooled)
    model = keras.Model(inputs, outputs, name=name)
    if config.architecture.startswith("efficientnet-lite"):
        from training.classifier.import_weights import load_imagenet_features
        from training.classifier.local_contrast import WEIGHTED_LAYERS

        load_imagenet_features(model, config.architecture, config.weights, skip=("predictions", *WEIGHTED_LAYERS))
    return model


def _small_backbone(keras, inputs, multiplier: float):
    """A compact residual CNN that trains from scratch on a 2-core CPU in well under an hour."""
    layers = keras.layers
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    channels = [int(c * multiplier) for c in (24, 48, 96, 160, 224)]
    x = layers.Conv2D(channels[0], 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(channels[1:], start=1):
        shortcut = layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"s{stage}_proj")(x)
        y = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"s{stage}_c1")(x)
        y = layers.BatchNormalization(name=f"s{stage}_bn1")(y)
        y = layers.ReLU(name=f"s{stage}_r1")(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"s{stage}_c2")(y)
        y = layers.BatchNormalization(name=f"s{stage}_bn2")(y)
        x = layers.Add(name=f"s{stage}_add")([shortcut, y])
        x = layers.ReLU(name=f"s{stage}_out" if stage < len(channels) - 1 else LAST_CONV)(x)
    return x


def _transfer_backbone(keras, inputs, config: ClassifierConfig):
    """An ImageNet backbone from a local weights file: offline machines cannot download one."""
    if config.architecture.startswith("efficientnet-lite"):
        # Flat in the classifier's graph; build_classifier loads the weights once the model exists.
        from training.classifier.efficientnet_lite import efficientnet_lite_features
        from training.classifier.import_weights import weights_path

        weights_path(config.architecture, config.weights)  # a missing file fails before the build
        return efficientnet_lite_features(keras, inputs, config.architecture, output_name=LAST_CONV)
    if not config.weights:
        raise UserError(
            f"The {config.architecture} backbone needs ImageNet weights, and nothing can be "
            "downloaded here: pass --weights PATH to a local Keras weights file "
            "(e.g. the *_notop.h5 file from keras.applications)"
        )
    weights = Path(config.weights)
    if not weights.is_file():
        raise UserError(f'Weights file not found: "{weights}"')
    layers = keras.layers
    shape = (config.height, config.width, 3)
    if config.architecture == "vgg16":
        # VGG16 expects BGR with the ImageNet mean removed; a frozen 1x1 convolution does that
        # with standard layers only (no Lambda), so the saved model stays safe to load.
        to_bgr = layers.Conv2D(3, 1, name="to_bgr_centred", trainable=False)
        x = to_bgr(inputs)
        to_bgr.set_weights(
            [np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3), -np.array([103.939, 116.779, 123.68], "float32")]
        )
        backbone = keras.applications.VGG16(include_top=False, weights=None, input_shape=shape)
    elif config.architecture == "mobilenetv2":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
        backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=shape)
    else:
        x = inputs  # EfficientNet rescales inside itself
        backbone = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=shape)
    try:
        backbone.load_weights(str(weights))
    except Exception as err:
        raise UserError(
            f'"{weights}" does not hold {config.architecture} weights without the top '
            f"({err.__class__.__name__}: {err})"
        ) from err
    features = backbone(x)
    return layers.Activation("linear", name=LAST_CONV)(features)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights (n / (k * n_c)), so each class counts equally in the loss."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def train_classifier(
    config: ClassifierConfig,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    out_dir: Path,
    augment: AugmentConfig,
    *,
    resume: bool = False,
    stop_after_epochs: int | None = None,
    log=logger.info,
    data: str = "",
):
    """Train and return (best inference model, TrainState). Checkpoints go to out_dir/checkpoint,
    recording `data` (the resolved data folder) so that a resume on another is refused. In a run
    over several processes the model returned to any but the writer is not to be used.

    `stop_after_epochs` ends the run early as if it were interrupted (used by tests of resume).
    """
    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    if keras_backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()  # JAX's CPU and GPU kernels are deterministic as they come
    trainer, classifier = build_trainer(config, num_classes, augment)
    checkpoint = CheckpointFolder(out_dir / "checkpoint")
    state = checkpoint.open(trainer, config, resume=resume, may_change=RESUMABLE_FIELDS, data=data)
    distribute.agree(state.epoch, "the epoch to resume after")
    last_epoch = last_epoch_of_call(state, config.epochs, stop_after_epochs, log,
                                    f" (best val AUC {state.best_score:.4f})")
    if state.epoch < last_epoch and state.wait < config.patience:
        batches, steps = epoch_batches(config, train, num_classes, state.epoch, last_epoch)

        def describe(seconds: float, logs: dict) -> str:
            return (f"val AUC {logs['val_macro_auc']:.4f}, val acc {logs['val_accuracy']:.3f}, "
                    f"val loss {logs['val_loss']:.4f} ({seconds:.0f} s)")

        trainer.fit(
            batches,
            steps_per_epoch=steps,
            # Told as "Epoch 22/30" whether or not the run stops early.
            epochs=config.epochs,
            initial_epoch=state.epoch,
            shuffle=False,  # the batches are already in their (seed, epoch) order
            verbose=int(distribute.is_writer()),
            callbacks=[
                # first: its bar ends before the line
                *([keras.callbacks.ProgbarLogger()] if distribute.is_writer() else []),
                *_classifier_callbacks(keras, config, classifier, val, state, checkpoint, last_epoch),
                *epoch_callbacks(state, checkpoint, config.epochs, log, describe),
            ],
        )
    if distribute.finish():
        if not distribute.is_writer():
            return classifier, state  # the writer saves the model; this process is done
        classifier = build_classifier(config, num_classes)  # on this process's device alone
    if state.best:
        classifier.load_weights(checkpoint.folder / state.best)
    return classifier, state


def build_trainer(config: ClassifierConfig, num_classes: int, augment: AugmentConfig):
    """(the compiled trainer, the inference model inside it): the augmentation front end, when
    `config.augment`, before the classifier, with the optimiser built so that a checkpoint's
    slots have variables to load into."""
    keras = import_keras()
    random_gamma_layer()  # registered before a checkpoint that contains it is loaded
    classifier = build_classifier(config, num_classes)
    if config.init_from:
        from training.classifier.import_weights import start_from

        start_from(classifier, config.init_from)
    if config.architecture != "small":
        freeze_pretrained(classifier, config)
    layers = [keras.Input((config.height, config.width, 3))]
    if config.augment:
        layers.append(build_augmenter(augment, seed=config.seed))
    trainer = keras.Sequential([*layers, classifier], name="trainer")
    trainer.compile(
        optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer, classifier


def epoch_batches(config: ClassifierConfig, train: tuple[np.ndarray, np.ndarray], num_classes: int,
                  first_epoch: int, last_epoch: int):
    """(a stream of the training batches of epochs `first_epoch` to `last_epoch`, steps per
    epoch): (float32 images, one-hot labels), and each image's class weight with
    `config.class_weighting`. A tf.data stream under TensorFlow, the numpy batches themselves
    under another backend (JAX), which takes a Python generator and has no TensorFlow to ask.

    The rows, their order and the camera draws of an epoch depend only on (seed, epoch), so a
    resumed run replays them. Each epoch is every training image, or with `config.epoch_size`
    that many drawn with every class equally often (then without class weights).
    """
    x_train, y_train = train
    balanced = config.epoch_size > 0
    weights = class_weights(y_train, num_classes) if config.class_weighting and not balanced else None
    rows = config.epoch_size if balanced else len(x_train)
    one_hot = np.eye(num_classes, dtype="float32")

    def batches():
        for epoch in range(first_epoch, last_epoch):
            rng = np.random.default_rng([config.seed, epoch])
            order = balanced_draw(y_train, config.epoch_size, rng) if balanced else rng.permutation(len(x_train))
            x_epoch, y_epoch = x_train[order], y_train[order]
            if config.camera_augment:
                x_epoch = camera_augment_batch(x_epoch, CameraAugmentConfig(),
                                               np.random.default_rng([config.seed, epoch, 2]))
            for start in range(0, len(order), config.batch_size):
                stop = start + distribute.even_rows(min(config.batch_size, len(order) - start))
                if stop == start:
                    break
                rows = np.arange(start, stop)[distribute.process_rows(stop - start)]  # all of them on one process
                labels = y_epoch[rows]
                batch = (x_epoch[rows].astype("float32"), one_hot[labels])
                if weights is not None:  # as fit's class_weight would weigh them
                    batch += (np.array([weights[int(c)] for c in labels], dtype="float32"),)
                yield batch

    # The batch size is part of the stream's shape when every batch is full, as it is when fit()
    # slices arrays: TensorFlow's CPU kernels round differently when they know it, so without it
    # the same seed would no longer give the weights it gave when epochs were fitted from arrays.
    steps = rows // config.batch_size + (distribute.even_rows(rows % config.batch_size) > 0)
    if keras_backend() != "tensorflow":
        return batches(), steps
    import tensorflow as tf

    known = config.batch_size if rows % config.batch_size == 0 else None
    signature = (tf.TensorSpec((known, config.height, config.width, 3), tf.float32),
                 tf.TensorSpec((known, num_classes), tf.float32))
    if weights is not None:
        signature += (tf.TensorSpec((known,), tf.float32),)
    return tf.data.Dataset.from_generator(batches, output_signature=signature), steps


def _classifier_callbacks(keras, config: ClassifierConfig, classifier, val, state: TrainState,
                          checkpoint: CheckpointFolder, last_epoch: int) -> list:
    """The classifier's own per-epoch work, around the shared clock and checkpoint: the
    learning rate and random state of each epoch, and its judgement on the validation set."""

    class EpochStart(keras.callbacks.Callback):
        """The learning rate and every random generator in the trainer from (seed, epoch)
        alone: a resumed run replays them."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(_cosine_lr(config, epoch))
            reseed(self.model, config.seed, epoch)

    class Validation(keras.callbacks.Callback):
        """Val loss, accuracy and macro AUC into the epoch's logs; the best epoch's weights
        kept; training stopped when the AUC has not improved for `patience` epochs, or at
        `last_epoch`."""

        def on_epoch_end(self, epoch, logs=None):
            with distribute.predictions_on_every_process():
                probs = classifier.predict(val[0].astype("float32"), batch_size=64, verbose=0)
            score = _epoch_score(val[1], probs)
            logs["val_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(val[1])), val[1]], 1e-7, 1))))
            logs["val_accuracy"] = float(np.mean(probs.argmax(1) == val[1]))
            logs["val_macro_auc"] = score
            if score > state.best_score:
                state.best_score, state.best_epoch, state.wait = score, epoch + 1, 0
                checkpoint.save_best(classifier, state, epoch + 1)
            else:
                state.wait += 1
            if state.wait >= config.patience or epoch + 1 >= last_epoch:
                self.model.stop_training = True

    return [EpochStart(), Validation()]


def reseed(model, seed: int, epoch: int) -> None:
    """Set the state of every random generator in `model` (augmentation layers, dropout) from
    (seed, epoch) alone.

    Keras does not save a SeedGenerator's state with a model, so a resumed run would draw other
    augmentations and dropout masks than an uninterrupted one; drawn afresh each epoch from
    (seed, epoch), no random state crosses an epoch boundary and a resume replays them exactly.
    """
    states = [v for v in model.variables if v.name == "seed_generator_state"]
    values = np.random.default_rng([seed, epoch, 3]).integers(1, 2**31 - 1, len(states))
    for variable, value in zip(states, values):
        variable.assign(np.array([value, 0], dtype=variable.dtype))


def freeze_pretrained(classifier, config: ClassifierConfig) -> None:
    """Freeze what fine-tuning keeps: batch norm (inference mode too, so ImageNet's statistics
    stay) and the stem and first `config.frozen_blocks` blocks of the backbone."""
    keras = import_keras()
    early = ("stem",) + tuple(f"block{i}_" for i in range(config.frozen_blocks))
    for layer in classifier.layers:
        if config.freeze_batchnorm and isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        if layer.name.startswith(early):
            layer.trainable = False


def balanced_draw(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` row indices with every class equally often, shuffled: a class with enough rows
    gives distinct ones, a scarce class repeats some."""
    classes = np.unique(labels)
    per_class = -(-size // len(classes))
    rows = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        rows.append(rng.choice(members, per_class, replace=len(members) < per_class))
    return rng.permutation(np.concatenate(rows))[:size]


def _cosine_lr(config: ClassifierConfig, epoch: int) -> float:
    warmup = 2
    if epoch < warmup:
        return config.learning_rate * (epoch + 1) / warmup
    progress = (epoch - warmup) / max(1, config.epochs - warmup)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def _epoch_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """The figure an epoch is judged by: the val macro AUC over every class.

    A class missing from a tiny validation set makes that AUC undefined: NaN (never an
    improvement) with the scikit-learn of today, a ValueError with older ones, for which the
    epoch is judged by its accuracy instead, as it always was.
    """
    try:
        return macro_auc(labels, probs, every_class=True)
    except ValueError:
        return float(np.mean(probs.argmax(1) == labels))
