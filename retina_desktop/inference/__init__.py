"""Every model kind served one way: sidecars, compiled (LiteRT) copies, Keras fallback, heatmaps."""
