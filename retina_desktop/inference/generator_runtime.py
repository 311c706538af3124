"""A generator on disk and its compiled copy running on LiteRT; no TensorFlow.

Owns what both the app (`synthesis`) and the compiler (`generator_export`) need: a generator's
sidecar (`GeneratorInfo`, `read_generator_info`), the latent vectors keyed by (seed, index), the
one-hot class weights, and `Generator`, which runs a compiled copy. Kept apart from `synthesis`
so that the compiler's self-check can run a compiled copy without importing the module that
calls the compiler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.inference import sidecars
from retina_desktop.inference.litert_backend import Program, model_available

# The generator kinds (their sidecars' exact "kind", see sidecars.py).
CONDITIONAL = sidecars.CONDITIONAL
VESSEL_TO_FUNDUS = sidecars.VESSEL_TO_FUNDUS


@dataclass(frozen=True)
class GeneratorInfo:
    """What the app needs to know about a generator before running it (from its sidecar)."""

    path: Path
    kind: str  # CONDITIONAL or VESSEL_TO_FUNDUS
    size: int
    classes: tuple[str, ...] = ()  # conditional: the labels, in index order
    latent_dim: int = 0
    styles: tuple[str, ...] = ()  # vessel-to-fundus: colour styles, in plane order
    modality: str = "fundus"
    # Width / height at which its square images are meant to be seen: 1 for fundus photographs
    # (cropped square), about 2.5 for OCT B-scans that were stretched into the square.
    display_aspect: float = 1.0
    sidecar: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """"fundus GAN (models/generator.keras)"-style label for menus."""
        what = "vessel-to-fundus" if self.kind == VESSEL_TO_FUNDUS else f"{self.modality} GAN"
        return f"{what} ({self.path.parent.name}/{self.path.name})"


def sidecar_path(generator_path: Path) -> Path:
    return Path(generator_path).with_suffix(".json")


def read_generator_info(path: str | Path) -> GeneratorInfo:
    """Read a generator's sidecar; `UserError` naming the file when it is missing or foreign."""
    path = Path(path)
    if not model_available(path):
        raise UserError(f'Generator not found: "{path}"')
    side = sidecar_path(path)
    try:
        data = sidecars.upgrade(sidecars.read_json(side))
        card = sidecars.parse(data)  # data is kept whole (with its exact kind) in GeneratorInfo
    except FileNotFoundError:
        raise UserError(f'"{path}" has no sidecar "{side}" saying what it generates; '
                        "generators made by `python -m training gan` or `pix2pix` have one") from None
    except OSError as err:
        raise UserError(f'The sidecar "{side}" could not be read: {err}') from err
    except ValueError as err:
        raise UserError(f'The sidecar "{side}" is not valid: {err}') from err
    if isinstance(card, sidecars.VesselToFundusSidecar):
        return GeneratorInfo(path, VESSEL_TO_FUNDUS, card.size, styles=tuple(card.styles), modality="fundus",
                             sidecar=data)
    if isinstance(card, sidecars.ConditionalGanSidecar):
        return GeneratorInfo(path, CONDITIONAL, card.size, classes=tuple(card.classes), latent_dim=card.latent_dim,
                             modality=card.modality, display_aspect=card.display_aspect, sidecar=data)
    raise UserError(f'"{side}" describes a {sidecars.kind_of(card)}, not a generator this app can run')


# ---- latent vectors: the same definitions training uses -------------------------------------


def latents(seed: int, indices, latent_dim: int) -> np.ndarray:
    """Latent vectors keyed by (seed, index): image i of a seed is the same whatever n is."""
    return np.stack([np.random.default_rng([seed, int(i)]).standard_normal(latent_dim) for i in indices]).astype(
        np.float32
    )


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 RGB."""
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def one_hot(indices, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(indices, dtype=int)]


# ---- running a compiled generator ------------------------------------------------------------


class Generator:
    """A compiled generator on a LiteRT `Program` (thread-safe: the program serialises calls)."""

    def __init__(self, info: GeneratorInfo, compiled: Path, *, threads: int | None = None) -> None:
        self.info = info
        self.compiled = compiled
        self.program = Program(compiled, "generator", threads=threads)
        self._output = self.program.outputs[0]["index"]

    def _input(self, word: str) -> dict:
        detail = self.program.input_named(word)
        if detail is None:
            raise ModelError(f'The compiled generator "{self.compiled}" has no input named like {word!r}')
        return detail

    def _run(self, feeds: list[tuple[dict, np.ndarray]]) -> np.ndarray:
        return self.program.run(feeds, [self._output])[0]

    def raw_generate(self, latent_vectors: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
        """The compiled copy's output in [-1, 1] (float32) for one batch of latents and class
        weights, as the Keras generator would give it (the compiler's self-check compares them)."""
        return self._run([(self._input("latent"), np.asarray(latent_vectors, np.float32)),
                          (self._input("class"), np.asarray(class_weights, np.float32))])

    def raw_translate(self, inputs: np.ndarray) -> np.ndarray:
        """The compiled vessel-to-fundus output in [-1, 1] (float32) for one batch of inputs."""
        return self._run([(self.program.inputs[0], np.asarray(inputs, np.float32))])

    def generate(self, latent_vectors: np.ndarray, class_weights: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """uint8 images (n, size, size, 3) for latents (n, latent_dim) and class weights (n, C)."""
        if self.info.kind != CONDITIONAL:
            raise ModelError(f'"{self.info.path}" turns vessel masks into images; it takes no latent vectors')
        latent_vectors = np.asarray(latent_vectors, np.float32)
        class_weights = np.asarray(class_weights, np.float32)
        if latent_vectors.shape[1:] != (self.info.latent_dim,) or class_weights.shape[1:] != (len(self.info.classes),):
            raise ValueError(f"expected latents (n, {self.info.latent_dim}) and weights (n, {len(self.info.classes)}), "
                             f"got {latent_vectors.shape} and {class_weights.shape}")
        latent_in, weights_in = self._input("latent"), self._input("class")
        out = [to_uint8(self._run([(latent_in, latent_vectors[i : i + batch_size]),
                                   (weights_in, class_weights[i : i + batch_size])]))
               for i in range(0, len(latent_vectors), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.info.size, self.info.size, 3), np.uint8)

    def translate(self, inputs: np.ndarray) -> np.ndarray:
        """uint8 images for vessel-to-fundus inputs (n, size, size, planes) from `vessel_synthesis`."""
        if self.info.kind != VESSEL_TO_FUNDUS:
            raise ModelError(f'"{self.info.path}" is a class-conditional GAN; it takes no vessel masks')
        detail = self.program.inputs[0]
        return np.concatenate([to_uint8(self._run([(detail, inputs[i : i + 1])])) for i in range(len(inputs))])
