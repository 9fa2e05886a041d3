"""Build a backbone without a config, for code outside OpenMMLab (detectron2, Ultralytics, plain PyTorch).

``create_backbone('transnext-tiny', pretrained=PATH_OR_URL, out_indices=(1, 2, 3))`` returns the same
``nn.Module`` that ``dict(type='TransNeXt', arch='tiny', ...)`` builds in an mmdet/mmseg config, with its
weights initialised (the family's random init, or the checkpoint loaded with key conversion). Nothing
here imports mmdet or mmseg.
"""
import difflib
import logging
from typing import Dict, List, Optional, Tuple, Type

from mmengine.logging import MMLogger

from .models.backbones import CrossFormer, GCViT, PyramidBackbone, TransNeXt, TwinsPCPVT, TwinsSVT, XCiT

# A backbone name is '<prefix>-<arch>', with an arch of the type's arch_zoo: 'twins-svt-base'.
NAME_PREFIXES: Dict[str, Type[PyramidBackbone]] = {
    'gcvit': GCViT,
    'twins-pcpvt': TwinsPCPVT,
    'twins-svt': TwinsSVT,
    'crossformer': CrossFormer,
    'xcit': XCiT,
    'transnext': TransNeXt,
}


def list_backbones() -> List[str]:
    """Every name :func:`create_backbone` takes, e.g. ``'gcvit-tiny'``, ``'crossformer-pp-base'``."""
    return [f'{prefix}-{arch}' for prefix, cls in NAME_PREFIXES.items() for arch in cls.arch_zoo]


def parse_backbone_name(name: str) -> Tuple[Type[PyramidBackbone], str]:
    """``'twins-svt-base'`` -> ``(TwinsSVT, 'base')``; an unknown name raises, listing the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f'backbone name must be a str like \'transnext-tiny\', got {type(name).__name__} {name!r}')
    key = name.strip().lower()
    for prefix in sorted(NAME_PREFIXES, key=len, reverse=True):  # 'twins-svt' before any shorter prefix
        cls = NAME_PREFIXES[prefix]
        arch = key[len(prefix) + 1:]
        if key.startswith(prefix + '-') and arch in cls.arch_zoo:
            return cls, arch
    names = list_backbones()
    close = difflib.get_close_matches(key, names, n=3)
    hint = f'; did you mean {", ".join(map(repr, close))}?' if close else ''
    raise ValueError(f'unknown backbone {name!r}{hint} Valid names: {", ".join(names)}')


def create_backbone(name: str, pretrained: Optional[str] = None, **kwargs) -> PyramidBackbone:
    """Build the backbone ``name`` (see :func:`list_backbones`) and initialise its weights.

    Args:
        name: ``'<family>-<arch>'``: ``'gcvit-tiny'``, ``'twins-pcpvt-small'``, ``'twins-svt-base'``,
            ``'crossformer-pp-base'``, ``'xcit-small-12-p16'``, ``'transnext-tiny'``, ...
        pretrained: a checkpoint path or URL, loaded as ``init_cfg=dict(type='Pretrained',
            checkpoint=pretrained)`` would load it (the authors' ImageNet or dense checkpoints, or this
            package's); ``None`` keeps the family's random initialisation.
        **kwargs: the backbone's other arguments (``out_indices``, ``drop_path_rate``,
            ``frozen_stages``, ``with_cp``, family-specific ones, ...); the arch comes from ``name``.

    Returns:
        The backbone, in training mode; ``backbone(x)`` returns a tuple of NCHW maps at strides
        4/8/16/32 for ``out_indices``, with ``backbone.out_channels`` channels.
    """
    cls, arch = parse_backbone_name(name)
    if 'arch' in kwargs:
        raise TypeError(f'create_backbone({name!r}) takes the arch from the name ({arch!r}), got arch='
                        f'{kwargs["arch"]!r} too; build {cls.__name__}(arch=...) directly for a custom arch')
    if pretrained is not None:
        if not isinstance(pretrained, str):
            raise TypeError(f'create_backbone: pretrained must be a checkpoint path or URL (str) or None, '
                            f'got {type(pretrained).__name__} {pretrained!r}')
        if kwargs.get('init_cfg') is not None:
            raise ValueError(f'create_backbone: got both pretrained={pretrained!r} and init_cfg='
                             f'{kwargs["init_cfg"]!r}; give the checkpoint once')
        kwargs['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    model = cls(arch=arch, **kwargs)
    logger = MMLogger.get_current_instance()
    skip_dump = _SkipInitInfoDump()
    logger.addFilter(skip_dump)
    try:
        model.init_weights()
    finally:
        logger.removeFilter(skip_dump)
    return model


class _SkipInitInfoDump(logging.Filter):
    """Drop the line per parameter that mmengine's ``BaseModule.init_weights`` logs to the console when no
    log file is open (a runner writes it to its log file); the load report still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != '_dump_init_info'
