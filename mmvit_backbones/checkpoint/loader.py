"""Unwrapping and applying checkpoints, with a load report and clear errors. :func:`load_pretrained` (what
``init_cfg=dict(type='Pretrained', checkpoint=...)`` runs): read weights-only (:mod:`.files`) -> unwrap the
container, strip ``module.``, keep the ``backbone.`` part -> check the family -> the family converter renames keys
and resizes tables -> compare with the model (shape mismatches, missing parameters and keys no parameter takes
raise; known-unused keys are reported) -> load and log the report.
"""
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import nn

from .files import CONTAINER_KEYS, CheckpointError, read_checkpoint
from .registry import CONVERTERS, StateDict, get_converter, is_classifier_key


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did (also logged)."""
    source: str
    container: str
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)

    def summary(self, model_name: str) -> str:
        return report_lines(f'{model_name}: loaded {len(self.loaded)}/{len(self.loaded) + len(self.missing)} '
                            f'tensors from {self.source} (container: {self.container})',
                            ('missing, left at their initialisation', self.missing, 8),
                            ('not used by this model, ignored', self.unexpected, 8))


def _short(keys: List[str], n: int = 8) -> str:
    return ', '.join(keys[:n]) + (f', ... (+{len(keys) - n})' if len(keys) > n else '')


def report_lines(header: str, *groups: Tuple[str, List[str], int]) -> str:
    """``header``, then a line per non-empty group ``(label, keys, how many keys to name)``."""
    return '\n'.join([header] + [f'  {label} ({len(keys)}): {_short(keys, n)}' for label, keys, n in groups if keys])


def extract_state_dict(ckpt: dict, source: str = '<memory>', prefix: Optional[str] = None) -> Tuple[StateDict, str]:
    """Unwrap the container and strip wrapper prefixes; returns ``(state_dict, container_name)``."""
    container = next((key for key in CONTAINER_KEYS if isinstance(ckpt.get(key), dict)), 'raw')
    ckpt = ckpt if container == 'raw' else ckpt[container]
    state_dict = {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not state_dict:
        raise CheckpointError(f'checkpoint {source} has no tensors under {CONTAINER_KEYS} or at top level '
                              f'(top-level keys: {_short(sorted(map(str, ckpt)))})')
    # DataParallel / DDP wrappers
    state_dict = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state_dict.items()}
    prefix = prefix if prefix is not None else ('backbone.' if any(k.startswith('backbone.') for k in state_dict)
                                                else '')
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        picked = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not picked:
            raise CheckpointError(f'checkpoint {source} has no keys with prefix {prefix!r}')
        state_dict = picked
    return state_dict, container


def apply_state_dict(model: nn.Module, state_dict: StateDict, source: str, container: str,
                     allow_missing=lambda key: False, allow_unexpected=None) -> LoadReport:
    """Load a converted state dict into ``model``; raises on shape mismatches, on missing parameters that
    ``allow_missing`` does not accept and on unexpected keys not known to be unused (:func:`unused_keys`)."""
    own = model.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise CheckpointError(f'{type(model).__name__}: {len(mismatched)} tensors of {source} have the wrong '
                              f'shape (is this the right arch?): {_short(mismatched, 5)}')
    report = LoadReport(source, container, loaded=[k for k in own if k in state_dict],
                        missing=[k for k in own if k not in state_dict],
                        unexpected=unused_keys(model, state_dict, source, allow_unexpected))
    not_allowed = [k for k in report.missing if not allow_missing(k)]
    if not_allowed:
        raise CheckpointError(f'{type(model).__name__}: {len(not_allowed)} backbone parameters are missing from '
                              f'{source} (wrong arch or family?): {_short(not_allowed)}')
    model.load_state_dict({k: state_dict[k] for k in report.loaded}, strict=False)
    return report


def unused_keys(model: nn.Module, state_dict: StateDict, source: str, allow_unexpected=None) -> List[str]:
    """The keys of ``state_dict`` that ``model`` has no tensor for. Each must be known to be unused:
    ``allow_unexpected(key, model)`` accepts it (default: the classifier), or it belongs to a stage the backbone
    leaves unbuilt for its ``out_indices`` (``model.is_unbuilt_key``, when the model has it); any other key
    raises (another arch or depth)."""
    own, is_unbuilt = model.state_dict(), getattr(model, 'is_unbuilt_key', lambda key: False)
    unexpected = [k for k in state_dict if k not in own]
    foreign = [k for k in unexpected if not ((allow_unexpected or is_classifier_key)(k, model) or is_unbuilt(k))]
    if foreign:
        depths = (getattr(model, 'arch_settings', None) or {}).get('depths')
        hint = f'the model has depths {tuple(depths)}' if depths is not None else 'check the arch'
        raise CheckpointError(f'{type(model).__name__}: {len(foreign)} tensors of {source} match no parameter of '
                              f'this model (another arch or depth? {hint}): {_short(foreign, 6)}')
    return unexpected


def load_pretrained(model: nn.Module, path: str, prefix: Optional[str] = None, map_location: str = 'cpu',
                    family: Optional[str] = None, sha256: Optional[str] = None,
                    check_hash: bool = False) -> LoadReport:
    """Load the authors' or this package's checkpoint at ``path`` (file or URL) into backbone ``model``;
    ``sha256`` (hex digest or a prefix of >= 8 digits) or ``check_hash`` (torch hub's ``name-<sha256
    prefix>.pth`` convention) make the file's hash checked."""
    family = family or getattr(model, 'family', '')
    get_converter(family)  # an unknown family fails before anything is downloaded
    ckpt = read_checkpoint(path, map_location, sha256=sha256, check_hash=check_hash)
    return _convert_and_load(family, *extract_state_dict(ckpt, path, prefix), model, path)


def _convert_and_load(family: str, state_dict: StateDict, container: str, model: nn.Module,
                      source: str) -> LoadReport:
    """Check the family, convert with its converter, load into ``model`` and log the report."""
    check_family(state_dict, family, source)
    converter = get_converter(family)
    report = apply_state_dict(model, converter.convert(dict(state_dict), model), source, container,
                              converter.allow_missing, converter.allow_unexpected)
    print_log(report.summary(type(model).__name__), logger='current')
    return report


def check_family(state_dict: StateDict, family: str, source: str) -> None:
    """Raise when the keys do not look like ``family``, naming the family they do look like."""
    if get_converter(family).detect(state_dict):
        return
    others = [name for name, conv in CONVERTERS.items() if name != family and conv.detect(state_dict)]
    hint = f'it looks like a {" / ".join(others)} checkpoint' if others else \
        f'its keys match no known family (first keys: {_short(sorted(state_dict), 4)})'
    raise CheckpointError(f'{source} is not a {family} checkpoint: {hint}')


def convert_file(family: str, src: str, model: nn.Module, prefix: Optional[str] = None) -> Dict[str, object]:
    """Offline conversion used by ``tools/convert_checkpoint.py``: returns ``{'state_dict', 'meta'}``."""
    state_dict, container = extract_state_dict(read_checkpoint(src), src, prefix)
    return convert_state_dict(family, state_dict, model, src, container)


def convert_state_dict(family: str, state_dict: StateDict, model: nn.Module, source: str,
                       container: str) -> Dict[str, object]:
    """Convert an unwrapped state dict into ``model`` and return this package's checkpoint layout."""
    report = _convert_and_load(family, state_dict, container, model, source)
    full = model.state_dict()  # includes the parameters the source lacked, at their initialisation
    return dict(state_dict=full, meta=dict(family=family, source=os.path.basename(source), container=container,
                                           missing_in_source=report.missing))
