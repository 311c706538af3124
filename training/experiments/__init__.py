"""Experiments: the GAN augmentation pipeline, model comparisons, figures and the linear probe."""
