"""gcvit backbone (to be written)."""
