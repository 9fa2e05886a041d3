"""Key conversion for gcvit checkpoints (to be written)."""
