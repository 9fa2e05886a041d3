"""Build a backbone without a config, for code outside OpenMMLab (detectron2, Ultralytics, plain PyTorch):
``create_backbone('transnext-tiny', pretrained=PATH_OR_URL)`` is the ``nn.Module`` that
``dict(type='TransNeXt', arch='tiny')`` builds in a config, its weights initialised. Imports no mmdet or mmseg.
"""
import difflib
import json
import logging
from typing import Dict, List, Optional, Tuple, Type, Union

from mmengine.logging import MMLogger

from .models import backbones
from .models.backbones import PyramidBackbone

# A backbone name is '<name_prefix>-<arch>' ('twins-svt-base'), in the order the backbones package exports them.
NAME_PREFIXES: Dict[str, Type[PyramidBackbone]] = {
    cls.name_prefix: cls for cls in (getattr(backbones, n) for n in backbones.__all__)
    if isinstance(cls, type) and issubclass(cls, PyramidBackbone) and cls.name_prefix}


def list_backbones(pretrained: bool = False) -> List[str]:
    """Every name :func:`create_backbone` takes (``'gcvit-tiny'``, ...); with ``pretrained=True`` those whose
    default release the model-zoo metafiles name with a direct download."""
    names = [f'{prefix}-{arch}' for prefix, cls in NAME_PREFIXES.items() for arch in cls.arch_zoo]
    if not pretrained:
        return names
    from .checkpoint.zoo import releases
    known = releases()
    return [name for name in names if name in known and known[name].url]


def parse_backbone_name(name: str) -> Tuple[Type[PyramidBackbone], Union[str, dict]]:
    """The one parser of backbone names: ``'twins-svt-base'`` or ``'TwinsSVT:base'`` (``TYPE:ARCH``, the registered
    type and an arch name or a JSON arch dict) -> ``(TwinsSVT, 'base')``; an unknown name raises, listing the valid
    ones."""
    if not isinstance(name, str):
        raise TypeError(f'backbone name must be a str like \'transnext-tiny\', got {type(name).__name__} {name!r}')
    if ':' in name:  # TYPE:ARCH against mmengine's root registry
        from mmengine.registry import MODELS
        type_name, arch = (part.strip() for part in name.split(':', 1))
        cls = MODELS.get(type_name)
        if not (isinstance(cls, type) and issubclass(cls, PyramidBackbone)):
            known = sorted(n for n, c in MODELS.module_dict.items()
                           if isinstance(c, type) and issubclass(c, PyramidBackbone))
            raise ValueError(f'backbone {name!r}: type {type_name!r} is not a registered backbone; expected '
                             f'TYPE:ARCH with TYPE one of {", ".join(known)} (e.g. TransNeXt:tiny)')
        if not arch.startswith('{'):
            return cls, arch  # an unknown arch name raises when the backbone resolves it, naming the valid ones
        try:
            return cls, json.loads(arch)
        except json.JSONDecodeError as e:
            raise ValueError(f'backbone {name!r}: the arch is not valid JSON ({e})') from e
    key = name.strip().lower()
    for prefix, cls in sorted(NAME_PREFIXES.items(), key=lambda item: -len(item[0])):  # longest prefix first
        arch = key[len(prefix) + 1:]
        if key.startswith(prefix + '-') and arch in cls.arch_zoo:
            return cls, arch
    names = list_backbones()
    close = difflib.get_close_matches(key, names, n=3)
    hint = f'; did you mean {", ".join(map(repr, close))}?' if close else ''
    raise ValueError(f'unknown backbone {name!r}{hint} Valid names: {", ".join(names)}')


def create_backbone(name: str, pretrained: Union[str, bool, None] = None, **kwargs) -> PyramidBackbone:
    """Build the backbone ``name`` (see :func:`parse_backbone_name`) with its weights initialised, in training mode.
    ``pretrained``: a checkpoint path or URL, loaded as ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads
    it; ``True`` for the arch's default release in the metafiles (see ``list_backbones(pretrained=True)``);
    ``None``/``False``: the family's random init. ``kwargs``: the backbone's other arguments."""
    cls, arch = parse_backbone_name(name)
    if 'arch' in kwargs:
        raise TypeError(f'create_backbone({name!r}) takes the arch from the name ({arch!r}), got arch='
                        f'{kwargs["arch"]!r} too; build {cls.__name__}(arch=...) directly for a custom arch')
    if pretrained is True:  # the arch's default release, 'mmvit://<name>'
        from .checkpoint.zoo import direct_url, get_release
        if NAME_PREFIXES.get(cls.name_prefix) is not cls or not isinstance(arch, str):
            raise ValueError(f'create_backbone({name!r}, pretrained=True): a custom arch has no default release; '
                             f'give a checkpoint path or URL')
        release = get_release(f'{cls.name_prefix}-{arch}')
        direct_url(release)  # no direct download: say where to get the file, before building anything
        pretrained = release.location
    if pretrained is not None and pretrained is not False:
        if not isinstance(pretrained, str):
            raise TypeError(f'create_backbone: pretrained must be a checkpoint path or URL (str), True (the '
                            f'default release) or None, got {type(pretrained).__name__} {pretrained!r}')
        if kwargs.get('init_cfg') is not None:
            raise ValueError(f'create_backbone: got both pretrained={pretrained!r} and init_cfg='
                             f'{kwargs["init_cfg"]!r}; give the checkpoint once')
        kwargs['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    model = cls(arch=arch, **kwargs)
    logger = MMLogger.get_current_instance()
    logger.addFilter(_skip_init_info_dump)
    try:
        model.init_weights()
    finally:
        logger.removeFilter(_skip_init_info_dump)
    return model


def _skip_init_info_dump(record: logging.LogRecord) -> bool:
    """Drop the line per parameter ``BaseModule.init_weights`` logs when no log file is open (a runner's has it)."""
    return record.funcName != '_dump_init_info'


def build_backbone(name: str, checkpoint: Optional[str] = None, **kwargs) -> PyramidBackbone:
    """:func:`create_backbone` in eval mode, for the tools: ``checkpoint`` (a path or URL) or random weights."""
    return create_backbone(name, pretrained=checkpoint or None, **kwargs).eval()
