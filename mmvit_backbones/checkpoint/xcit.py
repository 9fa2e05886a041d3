"""Key conversion for xcit checkpoints (to be written)."""
