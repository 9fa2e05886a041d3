from .backbones import CrossFormer, GCViT, PyramidBackbone, TransNeXt, TwinsPCPVT, TwinsSVT, XCiT

__all__ = ['PyramidBackbone', 'GCViT', 'TwinsPCPVT', 'TwinsSVT', 'CrossFormer', 'XCiT', 'TransNeXt']
