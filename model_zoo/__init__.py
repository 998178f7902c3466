"""Released models (one folder each: card.json + weights). Installed as ``humclean.model_zoo``."""
