"""EfficientNet-Lite (lite0 .. lite4) as flat Keras 3 layers with stable names.

This module owns the network only: its block arguments, the layer names that ImageNet weights
are mapped onto (`training.classifier.import_weights`), and the builders. It follows the
`efficientnet-lite-pytorch` package whose ImageNet weights we import: ReLU6, no
squeeze-excitation, stem and head not scaled, batch norm epsilon 1e-3, TensorFlow-style "same"
padding. Every layer sits directly in the caller's graph (no nested model), so the app's
classifier can name the last activation `last_conv` for Grad-CAM and TFLite sees only builtin
ops (ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU6, Add).

Input: RGB floats in 0..255; the normalisation the weights expect, (x - 127) / 128, is a
standard `Rescaling` layer inside the network (no Lambda, so saved models load safely).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (width coefficient, depth coefficient, native resolution, dropout) of each variant.
VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": (1.4, 1.8, 300, 0.3),
}
# (repeats, kernel, stride, expand ratio, input filters, output filters) before scaling.
_BASE_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # PyTorch's momentum 0.01 counted the other way round
DROP_CONNECT_RATE = 0.2
# The weights were converted from the official TensorFlow EfficientNet-Lite checkpoints, which
# were trained on (x - 127) / 128 ("inception-style", for better post-quantisation), not on the
# torchvision mean/std that the PyTorch package's README example (left over from
# efficientnet_pytorch) shows; the official scaling also gives the more confident ImageNet answers.
INPUT_MEAN = 127.0
INPUT_STD = 128.0
NORMALIZE = "imagenet_normalize"
HEAD_ACTIVATION = "head_relu"


@dataclass(frozen=True)
class Block:
    """One MBConv block after width/depth scaling; `index` is its place in `_blocks.{index}`."""

    index: int
    kernel: int
    stride: int
    expand: int
    filters_in: int
    filters_out: int

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.filters_in == self.filters_out


def variant_name(variant: str) -> str:
    """'lite0' or 'efficientnet-lite0' -> 'efficientnet-lite0'; ValueError for anything else."""
    name = variant if variant.startswith("efficientnet-") else f"efficientnet-{variant}"
    if name not in VARIANTS:
        raise ValueError(f"Unknown EfficientNet-Lite variant {variant!r}; choose from {tuple(VARIANTS)}")
    return name


def native_size(variant: str) -> int:
    """The resolution the variant was trained at (224, 240, 260, ...)."""
    return VARIANTS[variant_name(variant)][2]


def _round_filters(filters: int, width: float) -> int:
    """The package's round_filters: nearest multiple of 8, never more than 10 % below."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    if rounded < 0.9 * scaled:
        rounded += 8
    return int(rounded)


def blocks(variant: str) -> list[Block]:
    """Every MBConv block of `variant`, in order. Lite keeps the first and last stage unscaled."""
    width, depth, _, _ = VARIANTS[variant_name(variant)]
    out: list[Block] = []
    last = len(_BASE_BLOCKS) - 1
    for stage, (repeats, kernel, stride, expand, f_in, f_out) in enumerate(_BASE_BLOCKS):
        f_in, f_out = _round_filters(f_in, width), _round_filters(f_out, width)
        if stage in (0, last):
            if stage == 0:
                f_in = STEM_FILTERS
        else:
            repeats = int(math.ceil(depth * repeats))
        for r in range(repeats):
            out.append(Block(len(out), kernel, stride if r == 0 else 1, expand, f_in if r == 0 else f_out, f_out))
    return out


def _same_padding(size: int | None, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding of one axis: the odd pixel goes after, as in Conv2dStaticSamePadding."""
    if size is None:
        raise ValueError("EfficientNet-Lite needs a fixed input height and width (TF-style same padding)")
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(layers, x, kernel: int, stride: int, name: str, *, filters: int | None = None):
    """Conv2D (or DepthwiseConv2D when `filters` is None) with the padding the weights were trained with.

    Stride 1 pads symmetrically, which Keras's "same" does identically in every backend; stride 2
    pads asymmetrically and is spelled out with ZeroPadding2D, because backends disagree there.
    """
    padding = "same"
    if stride > 1:
        pads = (_same_padding(x.shape[1], kernel, stride), _same_padding(x.shape[2], kernel, stride))
        if any(any(p) for p in pads):
            x = layers.ZeroPadding2D(pads, name=f"{name}_pad")(x)
        padding = "valid"
    if filters is None:
        return layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False, name=name)(x)


def _bn(layers, x, name: str):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)


def efficientnet_lite_features(
    keras,
    inputs,
    variant: str,
    *,
    output_name: str = HEAD_ACTIVATION,
    drop_connect_rate: float = DROP_CONNECT_RATE,
):
    """The feature map (h/32, w/32, 1280) after the head conv + BN + ReLU6, built in `inputs`' graph.

    `inputs` are RGB floats in 0..255 with a fixed height and width. The last layer is named
    `output_name` (the classifier passes `last_conv`). Stochastic depth (`drop_connect_rate`,
    scaled by depth as in the original) acts only in training.
    """
    layers = keras.layers
    x = layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name=NORMALIZE)(inputs)
    x = _conv(layers, x, 3, 2, "stem_conv", filters=STEM_FILTERS)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(layers, x, "stem_bn"))
    all_blocks = blocks(variant)
    for block in all_blocks:
        name = f"block{block.index}"
        shortcut = x
        hidden = block.filters_in * block.expand
        if block.expand != 1:
            x = layers.Conv2D(hidden, 1, use_bias=False, name=f"{name}_expand_conv")(x)
            x = layers.ReLU(6.0, name=f"{name}_expand_relu")(_bn(layers, x, f"{name}_expand_bn"))
        x = _conv(layers, x, block.kernel, block.stride, f"{name}_dwconv")
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(_bn(layers, x, f"{name}_dw_bn"))
        x = layers.Conv2D(block.filters_out, 1, use_bias=False, name=f"{name}_project_conv")(x)
        x = _bn(layers, x, f"{name}_project_bn")
        if block.has_skip:
            rate = drop_connect_rate * block.index / len(all_blocks)
            if rate > 0:
                # Whole-sample dropout of the residual branch (stochastic depth), as the package does.
                x = layers.Dropout(rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="head_conv")(x)
    return layers.ReLU(6.0, name=output_name)(_bn(layers, x, "head_bn"))


def build_efficientnet_lite(variant: str, include_top: bool = True, input_size: int | tuple[int, int] | None = None):
    """The ImageNet network: (h, w, 3) 0..255 RGB -> 1000 logits (or the feature map without the top).

    `input_size` defaults to the variant's native resolution.
    """
    from retina_desktop.core.quiet import import_keras

    keras = import_keras()
    name = variant_name(variant)
    size = input_size or native_size(name)
    height, width = (size, size) if isinstance(size, int) else size
    inputs = keras.Input((height, width, 3), name="image")
    x = efficientnet_lite_features(keras, inputs, name)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="top_pool")(x)
        x = keras.layers.Dropout(VARIANTS[name][3], name="top_dropout")(x)
        x = keras.layers.Dense(1000, name="logits")(x)
    return keras.Model(inputs, x, name=name.replace("-", "_"))
