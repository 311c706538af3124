"""Judging a classifier: one of each metric, the figures on subsets of the images (each disease
against healthy eyes, each source, referable disease), the Grad-CAM figure, Markdown tables, and
the `evaluate` run that puts them into metrics.json and a model's sidecar."""
