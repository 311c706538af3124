"""Images in: decoding files, the model's input, field-of-view framing, the image checks and augmentation."""
