"""Tkinter views. They talk to the service layer only and never import tensorflow or keras."""
