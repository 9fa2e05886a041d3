"""Training-loop pieces for mmengine: the runner (root ``RUNNERS``) and hooks (root ``HOOKS``)."""
from .hooks import RNGStateHook, capture_rng_state, restore_rng_state
from .runner import MMViTRunner

__all__ = ['MMViTRunner', 'RNGStateHook', 'capture_rng_state', 'restore_rng_state']
