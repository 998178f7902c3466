"""Training: hum synthesis, datasets, training loop, export to the zoo. Installed as ``humclean.training``."""
