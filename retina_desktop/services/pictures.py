"""What the views need to show pictures: which files are images, a picture opened upright, an
image fitted to a model's input, a heatmap laid back onto the photograph and blended over it,
and the Augment tab's previews of training-time augmentation.

The views (gui/, cli.py) reach imaging/ and inference/ only through services/, so a view never
decodes, fits or draws a picture its own way; this module names the few picture tools they share.
"""

from __future__ import annotations

from retina_desktop.imaging.augmentation import AugmentConfig, default_config, random_previews
from retina_desktop.imaging.decode import IMAGE_EXTENSIONS, list_images, load_image
from retina_desktop.imaging.preprocessing import fit_image
from retina_desktop.inference.heatmaps import overlay, place_heatmap

__all__ = [
    "IMAGE_EXTENSIONS",
    "AugmentConfig",
    "default_config",
    "fit_image",
    "list_images",
    "load_image",
    "overlay",
    "place_heatmap",
    "random_previews",
]
