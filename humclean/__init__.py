"""humclean: remove mains hum from audio archives without harming anything else."""

__version__ = "0.1.0"
