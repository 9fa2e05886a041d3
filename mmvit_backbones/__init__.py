"""mmvit-backbones: GCViT, Twins, CrossFormer, XCiT and TransNeXt as OpenMMLab 2.x backbones.

Importing the package registers every backbone in MMEngine's root ``MODELS`` registry (visible from both
``default_scope='mmdet'`` and ``'mmseg'``); outside OpenMMLab, ``create_backbone('transnext-tiny')`` builds one.
"""
from . import compat
from .version import __version__

compat.install()

from . import models  # noqa: E402,F401  (registers the backbones)
from . import checkpoint  # noqa: E402,F401  (registers the checkpoint converters)
from . import engine  # noqa: E402,F401  (registers RNGStateHook)
from .api import create_backbone, list_backbones  # noqa: E402
from .models import CrossFormer, GCViT, TransNeXt, TwinsPCPVT, TwinsSVT, XCiT  # noqa: E402

__all__ = ['__version__', 'create_backbone', 'list_backbones', 'GCViT', 'TwinsPCPVT', 'TwinsSVT', 'CrossFormer', 'XCiT',
           'TransNeXt']
