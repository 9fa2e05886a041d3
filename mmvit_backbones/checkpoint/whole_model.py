"""Whole detectors and segmentors: the authors' mmdet 2.x/3.x and mmseg 0.x/1.x checkpoints into ours
(docs/checkpoints.md). ``backbone.*`` keys go through the family check and converter, as for ``init_cfg``; neck and
head keys through :data:`HEAD_RENAMES` for the writer's library generation (``meta.mmdet_version`` /
``mmseg_version``). The tables are empty: every released neck and head has the same keys in mmdet 2.28.2 and 3.3.0
and mmseg 0.30.0 and 1.2.2, TransNeXt's Mask2Former (mmseg 1.0 / mmdet 3.0) as in mmseg 1.2 / mmdet 3.3
(tests/fixtures/whole_models/). A rename goes there if a release needs one.
"""
import re
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from torch import nn

from .files import CheckpointError, read_checkpoint
from .loader import _short, check_family, extract_state_dict, report_lines, unused_keys
from .registry import CONVERTERS, StateDict, get_converter

# library -> {major version of the checkpoint's writer: [(pattern, replacement), ...]} into mmdet 3 / mmseg 1
HEAD_RENAMES: Dict[str, Dict[int, List[Tuple[str, str]]]] = {'mmdet': {2: []}, 'mmseg': {0: []}}
# Tensors a model may hold that no released checkpoint needs to carry.
NOT_REQUIRED = re.compile(r'(^|\.)num_batches_tracked$')


def writer_of(checkpoint: dict) -> Optional[Tuple[str, str]]:
    """``('mmdet', '2.19.0')``-style name and version of the library that wrote ``checkpoint``."""
    meta = checkpoint.get('meta')
    for library in ('mmdet', 'mmseg'):
        version = meta.get(f'{library}_version') if isinstance(meta, dict) else None
        if isinstance(version, str) and version[:1].isdigit():
            return library, version
    return None


def convert_whole_model(checkpoint: dict, model: nn.Module, source: str,
                        revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )) -> Tuple[StateDict, dict]:
    """The authors' (or our) detector/segmentor checkpoint -> ``model``'s keys; returns ``(state_dict, info)``.
    ``revise_keys`` apply to every key, :data:`HEAD_RENAMES` to the neck and head keys, the converter of the
    backbone's family to the ``backbone.*`` keys (those it knows to be unused are dropped, listed as ignored)."""
    state_dict, container = extract_state_dict(checkpoint, source, prefix='')
    writer = writer_of(checkpoint)
    for pattern, repl in revise_keys:
        state_dict = {re.sub(pattern, repl, k): v for k, v in state_dict.items()}
    for pattern, repl in HEAD_RENAMES.get(writer[0], {}).get(int(writer[1].split('.')[0]), []) if writer else []:
        state_dict = {k if k.startswith('backbone.') else re.sub(pattern, repl, k): v for k, v in state_dict.items()}
    family = getattr(getattr(model, 'backbone', None), 'family', None)
    family = family if family in CONVERTERS else None  # None: not one of this package's backbones
    backbone = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    ignored = []
    if family and backbone:
        check_family(backbone, family, source)
        converter = get_converter(family)
        converted = converter.convert(backbone, model.backbone)
        unused = unused_keys(model.backbone, converted, source, converter.allow_unexpected)
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith('backbone.')}
        state_dict.update({f'backbone.{k}': v for k, v in converted.items() if k not in unused})
        ignored = [f'backbone.{k}' for k in unused]
    return state_dict, dict(container=container, writer=writer, ignored=ignored, family=family)


def apply_whole_state_dict(model: nn.Module, state_dict: StateDict, source: str, info: dict,
                           strict: bool = True) -> dict:
    """Load ``state_dict`` into ``model``; list (and when ``strict`` raise on) what stays unloaded."""
    own = model.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    loadable = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in state_dict and not NOT_REQUIRED.search(k)]
    unexpected = [k for k in state_dict if k not in own]
    name = type(model).__name__
    if strict and (missing or mismatched):
        problems = [f'{len(missing)} tensors of the model are not in it: {_short(missing, 10)}'] if missing else []
        problems += [f'{len(mismatched)} have another shape: {_short(mismatched, 5)}'] if mismatched else []
        raise CheckpointError(f'{name}: checkpoint {source} does not fit the model, {"; ".join(problems)}. '
                              f'Is it a checkpoint of this config (family, arch, head, classes)? To evaluate '
                              f'anyway with those tensors left at their initialisation, pass --allow-partial '
                              f'(tools/test.py) or set allow_partial_load=True in the config.')
    model.load_state_dict(loadable, strict=False)
    writer = '{} {}'.format(*info['writer']) if info.get('writer') else 'mmengine'
    family = f', backbone keys converted as {info["family"]}' if info.get('family') else ''
    print_log(report_lines(f'{name}: loaded {len(loadable)}/{len(own)} tensors from {source} (container: '
                           f'{info["container"]}, written by {writer}{family})',
                           ('missing, left at their initialisation', missing, 8),
                           ('shape mismatch, not loaded', mismatched, 4),
                           ('in the checkpoint, not in the model, ignored', info.get('ignored', []) + unexpected, 8)),
              logger='current', level=30 if (missing or mismatched) else 20)
    return dict(loaded=list(loadable), missing=missing, mismatched=mismatched, unexpected=unexpected,
                ignored=info.get('ignored', []))


def load_whole_model(model: nn.Module, filename: str, map_location='cpu', strict: bool = True,
                     revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )) -> dict:
    """Read ``filename`` (file or URL), convert it for ``model`` and load it; returns the report dict."""
    checkpoint = read_checkpoint(filename, map_location)
    state_dict, info = convert_whole_model(checkpoint, model, filename, revise_keys)
    return apply_whole_state_dict(model, state_dict, filename, info, strict)
