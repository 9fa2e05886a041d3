"""crossformer backbone (to be written)."""
