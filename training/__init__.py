"""Retina Desktop's training package: data sets, augmentation, classifiers, GANs, evaluation.

Produces the models in models/; never imported by the app.
"""
