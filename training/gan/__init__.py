"""The class-conditional GAN: its trainer, training run, metrics, DiffAugment and synthesis."""
