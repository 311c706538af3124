"""What runs a model: the `ModelRuntime` interface, its Keras and LiteRT sides, heatmaps, LiteRT export."""
