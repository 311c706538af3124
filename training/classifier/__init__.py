"""The classifier: its networks and training run, ImageNet weights, evaluation, checks, cards, export."""
