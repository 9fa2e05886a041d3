"""Key conversion for transnext checkpoints (to be written)."""
