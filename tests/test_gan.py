"""The conditional GAN, DiffAugment, synthesis and the GAN metrics, on tiny images and steps."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from tests.conftest import class_folders
from training.cli import main
from training.epochs import TrainState
from training.gan.config import GanConfig
from training.gan.diffaugment import diff_augment, parse_policy
from training.gan.generator_file import load_generator
from training.gan.metrics import fid, kid, memorisation, precision_recall
from training.gan.synthesize import synthesize
from training.gan.trainer import build_discriminator, build_generator, grid_spread, latents, train_gan

TINY = GanConfig(size=16, latent_dim=16, width=8, max_channels=32, batch_size=8, epochs=3,
                 labels=("a", "b"), grid_columns=3)


def _toy(n=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int32)
    images = rng.integers(0, 60, (n, 16, 16, 3)).astype(np.uint8)
    images[labels == 1, 4:12, 4:12] += 150
    return images, labels


def test_the_label_changes_the_generated_image():
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(0)
    generator = build_generator(TINY, 2)
    z = np.repeat(latents(7, [0], TINY.latent_dim), 2, axis=0)
    images = np.asarray(generator([z, np.array([0, 1], np.int32)], training=False))
    assert images.shape == (2, 16, 16, 3) and np.abs(images).max() <= 1.0
    assert np.abs(images[0] - images[1]).mean() > 1e-4
    logits = build_discriminator(TINY, 2)([images, np.array([0, 1], np.int32)])
    assert tuple(logits.shape) == (2, 1)


def test_each_class_has_its_own_batch_norm_gain_and_old_configs_keep_the_input_label_only():
    """Changing one class's gains changes that class's images and no other's."""
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(0)
    generator = build_generator(TINY, 2)
    z = np.repeat(latents(3, [0], TINY.latent_dim), 2, axis=0)
    labels = np.array([0, 1], np.int32)
    before = np.asarray(generator([z, labels], training=False))
    for layer in generator.layers:
        if layer.name.startswith("gain_"):
            (gains,) = layer.get_weights()
            gains[1] *= 2.0
            layer.set_weights([gains])
    after = np.asarray(generator([z, labels], training=False))
    assert np.array_equal(after[0], before[0]) and np.abs(after[1] - before[1]).mean() > 1e-3
    old = GanConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "conditional_norm"})
    names = [layer.name for layer in build_generator(old, 2).layers]
    assert old.conditional_norm is False and not any(n.startswith("gain_") for n in names)


def test_the_discriminator_sees_a_batch_with_no_spread():
    """Mode collapse (one image for every latent) shows in the batch-spread feature map."""
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    discriminator = build_discriminator(TINY, 2)
    spread = keras.Model(discriminator.inputs, discriminator.get_layer("batch_spread").output)
    varied = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    collapsed = np.repeat(varied[:1], 8, axis=0)
    labels = np.zeros(8, np.int32)
    assert float(np.asarray(spread([collapsed, labels]))[..., -1].max()) < 1e-3
    assert float(np.asarray(spread([varied, labels]))[..., -1].min()) > 1e-2
    old = GanConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "minibatch_std"})
    assert "batch_spread" not in [layer.name for layer in build_discriminator(old, 2).layers]


def test_grid_spread_puts_mode_collapse_and_an_ignored_label_in_numbers():
    rng = np.random.default_rng(0)
    one_per_class = np.repeat(rng.integers(0, 256, (2, 1, 8, 8, 3)), 4, axis=1).reshape(8, 8, 8, 3)
    collapsed = grid_spread(one_per_class.astype(np.uint8), 2)
    assert collapsed["latent_spread"] == 0 and collapsed["label_spread"] > 0.1
    same_for_every_class = np.tile(rng.integers(0, 256, (4, 8, 8, 3)), (2, 1, 1, 1)).astype(np.uint8)
    ignored = grid_spread(same_for_every_class, 2)
    assert ignored["label_spread"] == 0 and ignored["latent_spread"] > 0.1


@pytest.mark.slow
def test_the_discriminator_can_reach_the_hinge_margin():
    """Spectral norm caps each layer's gain at 1: a discriminator whose logits cannot grow past
    the hinge loss's margin (+-1) never tells real images from slightly blurred fakes, and the
    GAN learns from noise. Sharp noise against 2 x 2-blurred noise, at 64 px, must be told apart
    by that margin within 60 steps (averaging instead of summing the last features fails this:
    a gap of 0.75)."""
    import tensorflow as tf

    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    config = GanConfig(size=64, latent_dim=16, width=8, max_channels=32, labels=("a",))
    discriminator = build_discriminator(config, 1)
    optimizer = keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.99)
    rng = np.random.default_rng(0)
    labels = np.zeros(16, np.int32)
    for _ in range(60):
        sharp = rng.uniform(-1, 1, (16, 64, 64, 3)).astype(np.float32)
        noise = rng.uniform(-1, 1, (16, 64, 64, 3)).astype(np.float32)
        blurred = (noise + np.roll(noise, 1, 1) + np.roll(noise, 1, 2) + np.roll(noise, (1, 1), (1, 2))) / 4
        with tf.GradientTape() as tape:
            real = discriminator([sharp, labels], training=True)
            fake = discriminator([blurred, labels], training=True)
            loss = tf.reduce_mean(tf.nn.relu(1 - real)) + tf.reduce_mean(tf.nn.relu(1 + fake))
        variables = discriminator.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
    assert float(tf.reduce_mean(real) - tf.reduce_mean(fake)) > 2.0  # both sides past the margin
    assert float(loss) < 0.5


def test_a_balanced_epoch_draws_every_class_equally_often_and_replays_by_seed():
    from training.epochs import balanced_order

    labels = np.array([0] * 90 + [1] * 6 + [2] * 4)
    order = balanced_order(labels, seed=3, epoch=5)
    assert len(order) == 100 and set(order) <= set(range(100))
    counts = np.bincount(labels[order], minlength=3)
    assert counts.max() - counts.min() <= 1, counts  # 34/33/33, not 90/6/4
    assert set(order[labels[order] == 2]) == {96, 97, 98, 99}  # a scarce class's rows all appear
    assert np.array_equal(order, balanced_order(labels, seed=3, epoch=5))
    assert not np.array_equal(order, balanced_order(labels, seed=3, epoch=6))
    assert GanConfig.from_dict({"labels": ["a"]}).balance_classes is False  # older configs: the data's mix


def test_diffaugment_keeps_shapes_and_is_differentiable_and_seeded():
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    seed = tf.constant([1, 2], tf.int64)
    for policy in ("translation", "cutout", "translation,cutout"):
        y = diff_augment(x, seed, policy).numpy()
        assert y.shape == x.shape
        assert y.min() >= -1.0 and y.max() <= 1.0  # moves or blanks pixels, never invents values
        assert np.isin(y[y != 0], x.numpy()).all()
    y = diff_augment(x, seed, parse_policy("color,translation,cutout"))
    assert y.shape == x.shape and np.isfinite(y.numpy()).all()
    assert np.array_equal(y.numpy(), diff_augment(x, seed).numpy())
    assert not np.array_equal(y.numpy(), diff_augment(x, tf.constant([1, 3], tf.int64)).numpy())
    assert np.array_equal(diff_augment(x, seed, probability=0.0).numpy(), x.numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(diff_augment(x, seed) ** 2)
    grad = tape.gradient(loss, x).numpy()
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        parse_policy("colour")


@pytest.mark.slow
def test_resume_after_interruption_reaches_the_same_weights(tmp_path):
    images, labels = _toy()
    quiet = dict(verbose=0, log=lambda *_: None)
    straight, state = train_gan(TINY, images, labels, tmp_path / "a", **quiet)
    assert state.epoch == 3 and len(state.history) == 3
    train_gan(TINY, images, labels, tmp_path / "b", stop_after_epochs=1, **quiet)
    saved = json.loads((tmp_path / "b" / "checkpoint" / "state.json").read_text())
    assert saved["epoch"] == 1
    assert set(saved) == {f.name for f in dataclasses.fields(TrainState)}  # the format every trainer writes
    resumed, state = train_gan(TINY, images, labels, tmp_path / "b", resume=True, **quiet)
    assert state.epoch == 3
    for name in ("generator", "discriminator", "ema_generator"):
        for a, b in zip(getattr(straight, name).get_weights(), getattr(resumed, name).get_weights()):
            assert np.allclose(a, b, atol=1e-6), name
    # The EMA copy moved away from the generator: it is an average, not a copy.
    assert not np.allclose(straight.generator.get_weights()[-2], straight.ema_generator.get_weights()[-2])
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == [
        "epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    rows = list(csv.DictReader(open(tmp_path / "b" / "losses.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"] and {"d_loss", "g_loss", "seconds"} <= set(rows[0])


def test_adaptive_augmentation_r1_and_nonsaturating_loss_train(tmp_path):
    import dataclasses

    images, labels = _toy()
    config = dataclasses.replace(TINY, epochs=1, loss="nonsaturating", r1_gamma=1.0, ada_target=0.6, ada_images=80)
    gan, state = train_gan(config, images, labels, tmp_path, verbose=0, log=lambda *_: None)
    logs = state.history[-1]
    assert np.isfinite([logs["d_loss"], logs["g_loss"]]).all()
    # Starts at 0 and moves by batch / ada_images = 0.1 per step, either way, within [0, 1].
    assert 0.0 <= logs["augment_p"] <= 0.2 + 1e-6 and int(gan.step_counter.numpy()) == 2


def test_synthesize_is_reproducible_by_seed(tmp_path):
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(0)
    path = tmp_path / "generator.keras"
    build_generator(TINY, 2).save(path)
    path.with_suffix(".json").write_text(json.dumps({"classes": ["a", "b"], "size": 16, "latent_dim": 16}))
    generator, sidecar = load_generator(path)
    first = synthesize(generator, sidecar["classes"], "b", 5, tmp_path / "one", seed=3)
    again = synthesize(generator, sidecar["classes"], "b", 5, tmp_path / "two", seed=3)
    other = synthesize(generator, sidecar["classes"], "b", 5, tmp_path / "three", seed=4)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert first[0].read_bytes() != other[0].read_bytes()
    rows = list(csv.DictReader(open(tmp_path / "one" / "manifest.csv")))
    assert [(r["file"], r["label"], r["seed"], r["latent_index"]) for r in rows][:2] == [
        ("b_s3_00000.png", "b", "3", "0"), ("b_s3_00001.png", "b", "3", "1")]
    # Image i does not depend on how many were asked for.
    fewer = synthesize(generator, sidecar["classes"], "b", 2, tmp_path / "four", seed=3)
    assert fewer[1].read_bytes() == first[1].read_bytes()


def test_kid_and_fid_tell_identical_sets_from_shifted_ones():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 32))
    same_mean, _ = kid(real, real, subsets=20, subset_size=100)
    other = rng.normal(size=(200, 32))
    fresh_mean, _ = kid(real, other, subsets=20, subset_size=100)
    shifted_mean, _ = kid(real, other + 0.5, subsets=20, subset_size=100)
    # Two samples of one distribution: zero within noise. The very same set: slightly negative
    # (O(1/m): the cross term pairs each point with itself), still tiny next to a real shift.
    assert abs(fresh_mean) < 0.02
    assert shifted_mean > 0.5 and abs(same_mean) < 0.1 * shifted_mean and shifted_mean > 25 * abs(fresh_mean)
    assert fid(real, real) == pytest.approx(0.0, abs=1e-6)
    assert fid(real, other + 0.5) > 32 * 0.25 * 0.8


def test_precision_recall_and_memorisation_flag_copies():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(60, 8))
    precision, recall = precision_recall(real, real[:30] + 1e-3)
    assert precision == 1.0 and recall < 1.0
    precision, _ = precision_recall(real, real + 10.0)
    assert precision == 0.0
    train_images = rng.integers(0, 255, (60, 8, 8, 3)).astype(np.uint8)
    synth = train_images[:4].copy()  # four verbatim copies
    report = memorisation(real[:4] + 1e-6, real, synth, train_images, test_feats=rng.normal(size=(10, 8)))
    assert report["feature_nn_index"] == [0, 1, 2, 3] and report["pixel_nn_rmse"] == [0.0] * 4
    assert report["possible_copies"] == 4


def test_cli_trains_synthesizes_and_judges_a_toy_dataset(tmp_path, monkeypatch, small_bundle, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = class_folders(tmp_path / "data", ["cataract", "glaucoma"], per_class=8, size=32)
    out = tmp_path / "gan"
    assert main(["gan", "--data", str(root), "--out", str(out), "--labels", "glaucoma,cataract",
                 "--size", "16", "--width", "8", "--latent-dim", "16", "--epochs", "2",
                 "--batch-size", "4", "--d-learning-rate", "4e-4", "--keep-generators"]) == 0
    for name in ("generator.keras", "generator.json", "config.json", "losses.csv",
                 "samples/epoch_0001.png", "samples/epoch_0002.png", "checkpoint/state.json",
                 "generators/epoch_0001.keras", "generators/epoch_0001.json", "generators/epoch_0002.keras"):
        assert (out / name).exists(), name
    sidecar = json.loads((out / "generator.json").read_text())
    assert sidecar["classes"] == ["cataract", "glaucoma"] and sidecar["size"] == 16
    assert sidecar["latent_dim"] == 16 and sidecar["provenance"]["seconds_per_epoch"] > 0
    assert "command" in sidecar["provenance"] and sidecar["provenance"]["data"] == str(root)
    assert sidecar["fit"] == "crop" and sidecar["display_aspect"] == 1.0  # how gan-eval fits real images
    config = sidecar["provenance"]["config"]
    assert (config["g_learning_rate"], config["d_learning_rate"], config["init_generator"]) == (2e-4, 4e-4, "")
    logged = list(csv.DictReader(open(out / "losses.csv")))
    assert len(logged) == 2 and all(0 <= float(row["latent_spread"]) <= 1 for row in logged)

    synth = tmp_path / "synth"
    assert main(["synthesize", "--generator", str(out / "generator.keras"), "--label", "glaucoma",
                 "--n", "3", "--out", str(synth), "--seed", "5"]) == 0
    assert len(list(synth.glob("*.png"))) == 3 and (synth / "manifest.csv").exists()
    assert main(["synthesize", "--generator", str(out / "generator.keras"), "--label", "normal",
                 "--n", "3", "--out", str(synth)]) == 1  # a class it was not trained on

    judged = tmp_path / "eval"
    assert main(["gan-eval", "--generator", str(out / "generator.keras"), "--data", str(root),
                 "--classifier", str(small_bundle), "--n", "6", "--out", str(judged), "--json"]) == 0
    report = json.loads((judged / "gan_eval.json").read_text())
    assert "not Inception" in report["feature_extractor"] and report["fit"] == "crop"
    for label in ("cataract", "glaucoma"):
        figures = report["labels"][label]
        assert np.isfinite(figures["kid"]) and figures["fid"] >= 0
        assert len(figures["memorisation"]["feature_nn_index"]) == 6
        assert (judged / f"closest_pairs_{label}.png").exists()

    # Several generators on one set of real features: each its own report, a table, the same
    # figures as when judged alone (the last epoch's kept generator is the final one).
    kept = json.loads((out / "generators" / "epoch_0001.json").read_text())
    assert kept["classes"] == sidecar["classes"] and kept["provenance"]["epochs_trained"] == 1
    compared = tmp_path / "compare"
    epochs_kept = [str(out / "generators" / f"epoch_000{epoch}.keras") for epoch in (1, 2)]
    several = ["gan-eval", "--data", str(root), "--classifier", str(small_bundle), "--n", "6", "--out", str(compared),
               "--generator", *epochs_kept]
    assert main(several) == 0
    last = json.loads((compared / "generators-epoch_0002" / "gan_eval.json").read_text())
    first = json.loads((compared / "generators-epoch_0001" / "gan_eval.json").read_text())
    for label in ("cataract", "glaucoma"):
        assert last["labels"][label]["kid"] == pytest.approx(report["labels"][label]["kid"], abs=1e-6)
        assert first["labels"][label]["kid"] != pytest.approx(last["labels"][label]["kid"], abs=1e-9)
    assert "KID / first's" in capsys.readouterr().out
    assert main(several[:-1] + [several[-2]]) == 1  # the same generator twice
    # Real images fitted one way for all: generators trained on other framings are refused.
    other = tmp_path / "other.keras"
    other.write_bytes((out / "generators" / "epoch_0001.keras").read_bytes())
    other.with_suffix(".json").write_text(json.dumps(dict(kept, fit="stretch")))
    capsys.readouterr()
    assert main(several + [str(other)]) == 1
    assert "fit 'stretch'" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_refuses_another_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = class_folders(tmp_path / "data", ["cataract", "glaucoma"], per_class=4, size=32)
    out = tmp_path / "gan"
    options = ["gan", "--data", str(root), "--out", str(out), "--size", "16", "--width", "8",
               "--latent-dim", "16", "--batch-size", "4"]
    assert main(options + ["--epochs", "1", "--fit", "stretch"]) == 0
    # Cropped images after stretched ones would be another training set under the same config.
    assert main(options + ["--epochs", "2", "--fit", "crop", "--resume"]) == 1
    assert json.loads((out / "checkpoint" / "state.json").read_text())["epoch"] == 1
    assert main(options + ["--epochs", "2", "--fit", "stretch", "--resume"]) == 0


def _saved_generator(folder, config, classes=("a", "b"), seed=1):
    """A generator of `config` saved as a .keras file with the sidecar `gan` would write."""
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(seed)
    generator = build_generator(config, len(classes))
    for layer in generator.layers:  # non-trivial gains and biases, so a copy that drops them shows
        if layer.name.startswith("bn_") and not config.conditional_norm:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * 1.5, beta + 0.2, mean + 0.1, var * 2.0])
    folder.mkdir(parents=True, exist_ok=True)
    generator.save(folder / "generator.keras")
    (folder / "generator.json").write_text(json.dumps({
        "kind": "conditional generator (EMA weights)", "classes": list(classes),
        "size": config.size, "latent_dim": config.latent_dim, "provenance": {"config": config.to_dict()}}))
    return generator, folder / "generator.keras"


def test_a_plain_batch_norm_generator_starts_a_conditional_one_drawing_the_same_images(tmp_path):
    from training.gan.trainer import make_gan
    from training.gan.warm_start import warm_start

    plain = dataclasses.replace(TINY, conditional_norm=False)
    source, path = _saved_generator(tmp_path / "old", plain)
    gan = make_gan(dataclasses.replace(TINY, init_generator=str(path)), 2)
    z = latents(5, range(4), TINY.latent_dim)
    labels = np.array([0, 1, 0, 1], np.int32)
    fresh = np.asarray(gan.ema_generator([z, labels], training=False))
    warm_start(gan, path)
    want = np.asarray(source([z, labels], training=False))
    for generator in (gan.generator, gan.ema_generator):
        assert np.allclose(np.asarray(generator([z, labels], training=False)), want, atol=1e-5)
    assert not np.allclose(fresh, want, atol=1e-3)  # random weights drew something else


def test_a_conditional_generator_starts_another_by_straight_copy(tmp_path):
    from training.gan.trainer import make_gan
    from training.gan.warm_start import warm_start

    source, path = _saved_generator(tmp_path / "old", TINY)
    for layer in source.layers:  # per-class gains that differ, so a copy that skips them shows
        if layer.name.startswith("gain_"):
            (gains,) = layer.get_weights()
            layer.set_weights([gains * np.array([[0.5], [2.0]], np.float32)])
    source.save(path)
    gan = make_gan(TINY, 2)
    warm_start(gan, path)
    z, labels = latents(2, range(2), TINY.latent_dim), np.array([0, 1], np.int32)
    assert np.allclose(np.asarray(gan.ema_generator([z, labels], training=False)),
                       np.asarray(source([z, labels], training=False)), atol=1e-5)


def test_a_run_of_one_class_starts_from_that_class_of_a_many_class_generator(tmp_path):
    """`--labels b` from an (a, b) generator: the new one-class generator draws what the old one
    drew for b, not for a; a scarce class's own generator starts where the shared one was."""
    from training.gan.trainer import make_gan
    from training.gan.warm_start import warm_start

    source, path = _saved_generator(tmp_path / "old", TINY)
    for layer in source.layers:  # classes that differ in every per-class table
        if type(layer).__name__ == "Embedding":
            (table,) = layer.get_weights()
            layer.set_weights([table * np.array([[0.5], [2.0]], np.float32) + np.array([[0.0], [0.3]], np.float32)])
    source.save(path)
    gan = make_gan(dataclasses.replace(TINY, labels=("b",)), 1)
    warm_start(gan, path)
    z = latents(3, range(3), TINY.latent_dim)
    drawn = np.asarray(gan.ema_generator([z, np.zeros(3, np.int32)], training=False))
    as_b = np.asarray(source([z, np.ones(3, np.int32)], training=False))
    as_a = np.asarray(source([z, np.zeros(3, np.int32)], training=False))
    assert np.allclose(drawn, as_b, atol=1e-5)
    assert not np.allclose(drawn, as_a, atol=1e-3)


def test_init_generator_refuses_other_classes_or_widths_in_one_line(tmp_path):
    from retina_desktop.core.errors import UserError
    from training.gan.trainer import make_gan
    from training.gan.warm_start import warm_start

    _, other_classes = _saved_generator(tmp_path / "classes", TINY, classes=("a", "c"))
    _, wider = _saved_generator(tmp_path / "wide", dataclasses.replace(TINY, width=16))
    gan = make_gan(TINY, 2)
    with pytest.raises(UserError, match="its classes a, c do not include the run's b"):
        warm_start(gan, other_classes)
    with pytest.raises(UserError, match="other shapes; train with the same --width"):
        warm_start(gan, wider)
    with pytest.raises(UserError, match="no such file"):
        warm_start(gan, tmp_path / "missing.keras")


def test_the_cli_refuses_a_missing_init_generator_before_training(tmp_path, capsys):
    root = class_folders(tmp_path / "data", ["cataract", "glaucoma"], per_class=4, size=32)
    assert main(["gan", "--data", str(root), "--out", str(tmp_path / "gan"), "--size", "16",
                 "--init-generator", str(tmp_path / "nowhere.keras")]) == 1
    assert "nowhere.keras: no such file" in capsys.readouterr().err
    assert not (tmp_path / "gan" / "checkpoint").exists()


@pytest.mark.slow
def test_a_warm_started_run_resumes_to_the_same_weights(tmp_path):
    """The start is taken once: a resumed run keeps its checkpoint, not the source's weights."""
    images, labels = _toy()
    _, path = _saved_generator(tmp_path / "old", dataclasses.replace(TINY, conditional_norm=False))
    config = dataclasses.replace(TINY, epochs=2, init_generator=str(path))
    quiet = dict(verbose=0, log=lambda *_: None)
    straight, _ = train_gan(config, images, labels, tmp_path / "a", **quiet)
    train_gan(config, images, labels, tmp_path / "b", stop_after_epochs=1, **quiet)
    resumed, _ = train_gan(config, images, labels, tmp_path / "b", resume=True, **quiet)
    for a, b in zip(straight.ema_generator.get_weights(), resumed.ema_generator.get_weights()):
        assert np.allclose(a, b, atol=1e-6)


def test_the_discriminator_can_be_wider_than_the_generator():
    wide = dataclasses.replace(TINY, d_width=2 * TINY.width)
    assert wide.to_dict()["d_width"] == 16 and GanConfig.from_dict(TINY.to_dict()).d_width == 0
    narrow_d, wide_d = build_discriminator(TINY, 2), build_discriminator(wide, 2)
    assert wide_d.get_layer("conv_in").layer.filters == 2 * narrow_d.get_layer("conv_in").layer.filters
    assert wide_d.count_params() > narrow_d.count_params()
    assert build_generator(wide, 2).count_params() == build_generator(TINY, 2).count_params()
    images = np.zeros((2, 16, 16, 3), np.float32)
    assert tuple(wide_d([images, np.array([0, 1], np.int32)]).shape) == (2, 1)


def test_the_discriminator_can_drop_spectral_norm_for_r1_and_then_trains(tmp_path):
    bare = dataclasses.replace(TINY, d_spectral_norm=False, loss="nonsaturating", r1_gamma=0.2, epochs=1)
    layer = build_discriminator(bare, 2).get_layer("conv_in")
    assert type(layer).__name__ == "Conv2D"  # not wrapped
    assert type(build_discriminator(TINY, 2).get_layer("conv_in")).__name__ == "SpectralNormalization"
    assert GanConfig.from_dict({k: v for k, v in TINY.to_dict().items() if k != "d_spectral_norm"}).d_spectral_norm
    images, labels = _toy()
    _, state = train_gan(bare, images, labels, tmp_path / "bare", verbose=0, log=lambda *_: None)
    assert state.epoch == 1 and np.isfinite(state.history[-1]["d_loss"])


def test_the_cli_turns_an_impossible_configuration_into_one_line(tmp_path, capsys):
    root = class_folders(tmp_path / "data", ["cataract", "glaucoma"], per_class=4, size=32)
    for extra, message in ((["--size", "100"], "size must be a power of two"),
                           (["--d-norm", "none"], "needs an R1 penalty")):
        assert main(["gan", "--data", str(root), "--out", str(tmp_path / "gan")] + extra) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert not (tmp_path / "gan").exists()  # refused before anything was written


def _tiny_generator_file(folder):
    from retina_desktop.core.quiet import import_keras

    import_keras().utils.set_random_seed(0)
    path = folder / "generator.keras"
    build_generator(TINY, 2).save(path)
    path.with_suffix(".json").write_text(json.dumps({"classes": ["a", "b"], "size": 16, "latent_dim": 16}))
    return path


def test_synthesize_writes_each_batch_as_it_is_made(tmp_path, monkeypatch):
    import training.gan.synthesize as synthesize_module

    path = _tiny_generator_file(tmp_path)
    generator, sidecar = load_generator(path)
    real = synthesize_module.sample
    on_disk_at_each_batch = []

    def watching(*args, **kwargs):
        on_disk_at_each_batch.append(len(list((tmp_path / "out").glob("*.png"))))
        return real(*args, **kwargs)

    monkeypatch.setattr(synthesize_module, "sample", watching)
    written = synthesize(generator, sidecar["classes"], "a", 5, tmp_path / "out", seed=1, batch_size=2)
    assert on_disk_at_each_batch == [0, 2, 4]  # never more than one batch held in memory
    whole = synthesize(generator, sidecar["classes"], "a", 5, tmp_path / "whole", seed=1)
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in whole]  # batching changes nothing


def test_synthesize_refuses_a_count_beyond_its_bound_in_one_line(tmp_path, capsys):
    from training.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["synthesize", "--generator", str(tmp_path / "g.keras"), "--label", "a", "--n", "20000000",
              "--out", str(tmp_path / "out")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --n: 20000000 is out of range: give 1 to 100,000" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        main(["gan-eval", "--n", "-3"])
    assert "argument --n: -3 is out of range" in capsys.readouterr().err


def test_synthesized_pngs_are_marked_synthetic_as_the_apps_exports_are(tmp_path):
    from PIL import Image

    path = _tiny_generator_file(tmp_path)
    generator, sidecar = load_generator(path)
    [written] = synthesize(generator, sidecar["classes"], "b", 1, tmp_path / "out", seed=2, generator_path=path)
    chunks = Image.open(written).text
    assert chunks["Synthetic"] == "true" and chunks["Class"] == "b" and chunks["Seed"] == "2"
    assert chunks["Latent index"] == "0" and chunks["Generator"] == str(path)
    assert "not a patient image" in chunks["Description"]
