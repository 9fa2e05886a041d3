"""mmvit-backbones: GCViT, Twins, CrossFormer, XCiT and TransNeXt as OpenMMLab 2.x backbones.

Importing the package registers every backbone in MMEngine's root ``MODELS`` registry, so
``custom_imports=dict(imports=['mmvit_backbones'])`` makes them visible from both
``default_scope='mmdet'`` and ``default_scope='mmseg'``.
"""
from . import compat
from .version import __version__

compat.install()

from . import models  # noqa: E402,F401  (registers the backbones)
from . import checkpoint  # noqa: E402,F401  (registers the checkpoint converters)

__all__ = ['__version__']
