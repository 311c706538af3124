"""pix2pix (vessel mask -> fundus photograph): settings, pairs, trainer, training run, judging, drawing."""
