"""twins backbone (to be written)."""
