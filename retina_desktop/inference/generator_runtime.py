"""A generator on disk and its compiled copy running on LiteRT; no TensorFlow.

Owns what both the app (`synthesis`) and the compiler (`generator_export`) need: a generator's
sidecar (`GeneratorInfo`, `read_generator_info`), the latent vectors keyed by (seed, index), the
one-hot class weights, and `Generator`, which runs a compiled copy. Kept apart from `synthesis`
so that the compiler's self-check can run a compiled copy without importing the module that
calls the compiler.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import ModelError, UserError
from retina_desktop.core.quiet import stderr_captured

CONDITIONAL = "conditional"
VESSEL_TO_FUNDUS = "vessel-to-fundus"


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
    if not path.is_file():
        raise UserError(f'Generator not found: "{path}"')
    side = sidecar_path(path)
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f'"{path}" has no sidecar "{side}" saying what it generates; '
                        "generators made by `python -m training gan` or `pix2pix` have one") from None
    except (OSError, ValueError) as err:
        raise UserError(f'The sidecar "{side}" could not be read: {err}') from err
    kind = str(data.get("kind", ""))
    try:
        if "pix2pix" in kind or kind.startswith(VESSEL_TO_FUNDUS):
            return GeneratorInfo(path, VESSEL_TO_FUNDUS, int(data["size"]), styles=tuple(data["styles"]),
                                 modality="fundus", sidecar=data)
        if kind.startswith("conditional"):
            aspect = float(data.get("display_aspect", 1.0))
            if not 0.1 <= aspect <= 10:
                raise ValueError(f"display_aspect {aspect}")
            return GeneratorInfo(path, CONDITIONAL, int(data["size"]), classes=tuple(data["classes"]),
                                 latent_dim=int(data["latent_dim"]), modality=str(data.get("modality", "fundus")),
                                 display_aspect=aspect, sidecar=data)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f'The sidecar "{side}" lacks {err} or has it in an unexpected form') from err
    raise UserError(f'"{side}" describes a {kind!r}, not a generator this app can run')


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
    """A compiled generator on the LiteRT interpreter; thread-safe (calls are serialised)."""

    def __init__(self, info: GeneratorInfo, compiled: Path, *, threads: int | None = None) -> None:
        import os

        from ai_edge_litert.interpreter import Interpreter

        self.info = info
        self.compiled = compiled
        self._lock = threading.Lock()
        try:
            with stderr_captured():  # the runtime announces its CPU delegate on fd 2
                self._interpreter = Interpreter(model_path=str(compiled), num_threads=threads or os.cpu_count() or 1)
        except (ValueError, RuntimeError) as err:
            raise ModelError(f'"{compiled}" is not a usable compiled generator: {err}') from err
        self._inputs = {d["name"]: d for d in self._interpreter.get_input_details()}
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shapes: tuple = ()

    def _input(self, word: str) -> dict:
        for name, detail in self._inputs.items():
            if word in name:
                return detail
        raise ModelError(f'The compiled generator "{self.compiled}" has no input named like {word!r}')

    def _run(self, feeds: list[tuple[dict, np.ndarray]]) -> np.ndarray:
        with self._lock:
            shapes = tuple(a.shape for _, a in feeds)
            if shapes != self._shapes:
                with stderr_captured():  # the CPU delegate announces itself on first allocation
                    for detail, array in feeds:
                        self._interpreter.resize_tensor_input(detail["index"], list(array.shape), strict=True)
                    self._interpreter.allocate_tensors()
                self._shapes = shapes
            for detail, array in feeds:
                self._interpreter.set_tensor(detail["index"], np.ascontiguousarray(array, np.float32))
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output).copy()

    def raw_generate(self, latent_vectors: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
        """The compiled copy's output in [-1, 1] (float32) for one batch of latents and class
        weights, as the Keras generator would give it (the compiler's self-check compares them)."""
        return self._run([(self._input("latent"), np.asarray(latent_vectors, np.float32)),
                          (self._input("class"), np.asarray(class_weights, np.float32))])

    def raw_translate(self, inputs: np.ndarray) -> np.ndarray:
        """The compiled vessel-to-fundus output in [-1, 1] (float32) for one batch of inputs."""
        return self._run([(next(iter(self._inputs.values())), np.asarray(inputs, np.float32))])

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
        detail = next(iter(self._inputs.values()))
        return np.concatenate([to_uint8(self._run([(detail, inputs[i : i + 1])])) for i in range(len(inputs))])
