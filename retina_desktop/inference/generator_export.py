"""Compiling a generator (`.keras`) to LiteRT for `generator_runtime.Generator`; needs TensorFlow.

A class-conditional generator takes (latent, integer label) and looks the label up in an
Embedding. The compiled copy takes the class as weights over the classes instead, (n, C): while
tracing, every embedding lookup is replaced by `weights @ embedding_matrix`, which for a
one-hot row is the same lookup and for a blend of two rows is the blend of their embeddings,
what the Augment tab's class interpolation needs. A combined generator (`training gan-combine`)
is compiled so that each part runs only on the images routed to it. A vessel-to-fundus
generator has one image input and is compiled as it is. This module supplies only what is a
generator's own: its serving function and its self-check; converting, the manifest (with the
SHA-256 of the `.keras` file and of the compiled bytes) and deleting a copy that fails its check
are `litert_export.compile_program`'s, as for every model kind.

Runs at export time (`python -m training export`) or on first open of a new generator when
TensorFlow is installed; never in the packaged app.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.core.quiet import import_keras
from retina_desktop.inference.generator_runtime import (
    CONDITIONAL,
    Generator,
    GeneratorInfo,
    latents,
    one_hot,
    read_generator_info,
)
from retina_desktop.inference.litert_backend import cached_path_for, compiled_path_for, file_sha256
from retina_desktop.inference.litert_export import compile_program

TOLERANCE = 1e-4  # in the generator's [-1, 1] output units


def load_keras_generator(info: GeneratorInfo):
    keras = import_keras()
    try:
        return keras.saving.load_model(info.path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for foreign or broken files
        raise UserError(f'"{info.path}" could not be loaded as a Keras generator: {err}') from err


def _all_layers(model):
    """Every layer of `model`, those of the models nested in it included (a combined generator,
    `training gan-combine`, holds one generator per part)."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
        else:
            yield layer


def _embeddings(model) -> list:
    """Every label lookup in `model`, nested parts included."""
    return [layer for layer in _all_layers(model) if type(layer).__name__ == "Embedding"]


def _parts(model) -> list:
    """The generators inside a combined generator (`training gan-combine`); empty for others."""
    return [layer for layer in model.layers if layer.name.startswith("part_") and hasattr(layer, "layers")]


@contextlib.contextmanager
def _lookups_by_weights(embeddings, tables, class_weights, tf):
    """While tracing: every Embedding in `embeddings` returns `class_weights @ its table`."""
    original_calls = [layer.call for layer in embeddings]
    for layer in embeddings:
        table = tables[id(layer)]
        layer.call = lambda *_args, _table=table, **_kwargs: tf.matmul(class_weights, _table)
    try:
        yield
    finally:
        for layer, call in zip(embeddings, original_calls):
            layer.call = call


def _combined_image(tf, parts, tables, latent, class_weights, size: int):
    """What a combined generator's Keras graph draws (the sum over parts of route weight x part
    image), but each part runs only on the images routed to it: a grid of one class, the Augment
    tab's usual request, costs one part instead of all of them. `parts`: [(part, route table)]."""
    image = tf.zeros(tf.stack([tf.shape(latent)[0], size, size, 3]), tf.float32)
    for part, route in parts:
        weight = tf.matmul(class_weights, route)[:, 0]
        # The rows routed to this part, and row 0 with weight 0 after them: LiteRT's scatter
        # cannot take an empty batch, and a part with no rows in this batch would make one.
        rows = tf.concat([tf.cast(tf.where(tf.not_equal(weight, 0.0)), tf.int32), [[0]]], 0)  # (m + 1, 1)
        row_weights = tf.concat([tf.gather_nd(weight, rows[:-1]), [0.0]], 0)
        part_weights = tf.gather_nd(class_weights, rows)
        with _lookups_by_weights(_embeddings(part), tables, part_weights, tf):
            part_latent = tf.gather_nd(latent, rows)
            drawn = part([part_latent, tf.zeros(tf.shape(part_latent)[:1], tf.int32)], training=False)
        drawn *= tf.reshape(row_weights, [-1, 1, 1, 1])
        image += tf.scatter_nd(rows, drawn, tf.shape(image))
    return image


def _serving_function(tf, model, info: GeneratorInfo):
    if info.kind != CONDITIONAL:
        shape = [None] + [int(v) for v in model.inputs[0].shape[1:]]

        @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="planes")])
        def translate(planes):
            return {"image": model(planes, training=False)}

        return translate

    embeddings = _embeddings(model)
    if not embeddings:
        raise ModelError(f'"{info.path}" has no Embedding layer for its label; not a generator of `training gan`')
    # Every lookup by label (the input's, and the per-class batch-norm gains and biases of newer
    # generators) becomes weights @ matrix, so a blend of classes blends all of them alike.
    # Read here, outside the traced function: a variable's value cannot be fetched while tracing.
    tables = {id(layer): tf.constant(np.asarray(layer.get_weights()[0], np.float32)) for layer in embeddings}
    parts = [(part, tables[id(model.get_layer(f"route_{part.name.split('_')[1]}"))]) for part in _parts(model)]
    classes = len(info.classes)

    @tf.function(input_signature=[tf.TensorSpec([None, info.latent_dim], tf.float32, name="latent"),
                                  tf.TensorSpec([None, classes], tf.float32, name="class_weights")])
    def generate(latent, class_weights):
        if parts:
            return {"image": _combined_image(tf, parts, tables, latent, class_weights, info.size)}
        with _lookups_by_weights(embeddings, tables, class_weights, tf):
            labels = tf.zeros(tf.shape(latent)[:1], tf.int32)  # looked up by no one: see above
            return {"image": model([latent, labels], training=False)}

    return generate


def compile_generator(info: GeneratorInfo, out: Path, *, model=None, sha256: str | None = None) -> Path:
    """Compile the generator `info.path` to `out` (.tflite) with its manifest; check it; return `out`."""
    import_keras()
    import tensorflow as tf

    model = model if model is not None else load_keras_generator(info)
    return compile_program(_serving_function(tf, model, info), info.path, out, fields={"kind": info.kind},
                           check=lambda compiled, _manifest: _self_check(model, info, compiled), sha256=sha256)


def _self_check(model, info: GeneratorInfo, out: Path) -> None:
    """The compiled generator must draw what Keras draws, on a seeded batch."""
    compiled = Generator(info, out)
    if info.kind == CONDITIONAL:
        n = max(2, len(info.classes))
        z = latents(0, range(n), info.latent_dim)
        labels = np.arange(n) % len(info.classes)
        expected = np.asarray(model([z, labels.astype(np.int32)], training=False))
        got = compiled.raw_generate(z, one_hot(labels, len(info.classes)))
    else:
        shape = [2] + [int(v) for v in model.inputs[0].shape[1:]]
        planes = (np.random.default_rng(0).random(shape) > 0.5).astype(np.float32)
        expected = np.asarray(model(planes, training=False))
        got = compiled.raw_translate(planes)
    worst = float(np.abs(got - expected).max())
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise ModelError(f'The compiled copy of "{info.path}" differs from Keras by {worst:.2g} (> {TOLERANCE:g})')


def compile_generator_beside(path: str | Path) -> Path:
    """`python -m training export` for a generator: `<stem>.tflite` beside the `.keras` file."""
    info = read_generator_info(path)
    return compile_generator(info, compiled_path_for(info.path))


def compile_generator_to_cache(info: GeneratorInfo) -> Path:
    """First open of a generator with no compiled copy: compile into the user's cache."""
    sha256 = file_sha256(info.path)
    return compile_generator(info, cached_path_for(sha256), sha256=sha256)
