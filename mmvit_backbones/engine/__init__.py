"""Training-loop pieces for mmengine's Runner (registered in mmengine's root ``HOOKS``)."""
from .hooks import RNGStateHook, capture_rng_state, restore_rng_state

__all__ = ['RNGStateHook', 'capture_rng_state', 'restore_rng_state']
