"""Key conversion for crossformer checkpoints (to be written)."""
