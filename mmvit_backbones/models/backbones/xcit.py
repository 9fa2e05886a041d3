"""xcit backbone (to be written)."""
