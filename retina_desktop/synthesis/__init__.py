"""Synthetic images for the Augment tab: the generators' runtime, their export, and their samples."""
