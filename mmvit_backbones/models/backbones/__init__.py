"""One module per family; importing this package registers every backbone in mmengine's root MODELS."""
from . import crossformer, gcvit, transnext, twins, xcit  # noqa: F401
from .base import PyramidBackbone

__all__ = ['PyramidBackbone']
