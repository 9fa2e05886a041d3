"""One module per family; importing this package registers every backbone in mmengine's root MODELS."""
from .base import FeatureInfo, PyramidBackbone
from .crossformer import CrossFormer
from .gcvit import GCViT
from .transnext import TransNeXt
from .twins import TwinsPCPVT, TwinsSVT
from .xcit import XCiT

__all__ = ['FeatureInfo', 'PyramidBackbone', 'GCViT', 'TwinsPCPVT', 'TwinsSVT', 'CrossFormer', 'XCiT', 'TransNeXt']
