"""Retina Desktop: offline classification of retinal images with Keras models.

The model output it shows is not a diagnosis, and the tool is not a medical device.
"""

__version__ = "0.1.0"
