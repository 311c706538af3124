"""What the views ask for: classify, batch, reports, self-test, synthesis jobs for the Augment tab."""
