"""Graham's local-contrast normalisation as standard Keras layers, in front of a classifier.

Ben Graham's preprocessing (winner of Kaggle's 2015 diabetic-retinopathy challenge) subtracts
from each pixel a Gaussian blur of its neighbourhood, `4 * (x - blur(x)) + 128`: what differs
between cameras (colour balance, exposure, vignetting) varies slowly over the image and falls
away, while what differs between eyes (vessels, haemorrhages, exudates, the disc's rim) is
local and stays. It is built from frozen depthwise convolutions, a multiply and a clip inside
the saved network, so the app and training cannot apply it differently, the model loads
without custom code, and LiteRT compiles it with builtin ops.

Input: field-of-view standardised RGB floats in 0..255 (exactly 0 outside the field of view,
which stays 0). Output: the same range.
"""

from __future__ import annotations

import math

import numpy as np

# Graham blurred with sigma = radius / 30; our field of view fills the square, radius = side / 2.
SIGMA_PER_SIDE = 1 / 60
GAIN = 4.0
GREY = 128.0
# Its layers with (frozen, fixed) weights: not part of any pretrained backbone.
WEIGHTED_LAYERS = ("local_contrast_blur_rows", "local_contrast_blur_cols", "local_contrast_lit")


def gaussian_kernel(sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian out to three sigma."""
    half = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype("float32")


def local_contrast(keras, inputs, side: int):
    """`GAIN * (x - blur(x)) + GREY` inside the field of view, 0 outside, clipped to 0..255."""
    layers = keras.layers
    taps = gaussian_kernel(max(0.5, side * SIGMA_PER_SIDE))
    rows = layers.DepthwiseConv2D((len(taps), 1), padding="same", use_bias=False, trainable=False,
                                  name="local_contrast_blur_rows")
    cols = layers.DepthwiseConv2D((1, len(taps)), padding="same", use_bias=False, trainable=False,
                                  name="local_contrast_blur_cols")
    blurred = cols(rows(inputs))
    rows.set_weights([np.tile(taps.reshape(-1, 1, 1, 1), (1, 1, 3, 1))])
    cols.set_weights([np.tile(taps.reshape(1, -1, 1, 1), (1, 1, 3, 1))])
    detail = layers.Subtract(name="local_contrast_detail")([inputs, blurred])
    shifted = layers.Rescaling(GAIN, offset=GREY, name="local_contrast_gain")(detail)
    # 1 where any channel is lit, 0 on the frame: a frozen 1x1 convolution with a steep slope,
    # clipped by ReLU at 1 (standard layers only; no Lambda).
    lit = layers.Conv2D(1, 1, use_bias=False, trainable=False, name="local_contrast_lit")
    mask = layers.ReLU(max_value=1.0, name="local_contrast_mask")(lit(inputs))
    lit.set_weights([np.full((1, 1, 3, 1), 1000.0, "float32")])
    masked = layers.Multiply(name="local_contrast_masked")([shifted, mask])
    return layers.ReLU(max_value=255.0, name="local_contrast")(masked)
