"""Key conversion for twins checkpoints (to be written)."""
