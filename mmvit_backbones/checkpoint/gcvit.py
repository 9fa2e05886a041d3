"""Key conversion for GC ViT checkpoints (NVlabs/GCVit ImageNet releases, their detection backbone, timm's port).

The authors' names are kept, so conversion drops the classifier (``norm.*``, ``head.*``) and the
``relative_position_index`` buffers, and resizes each ``relative_position_bias_table`` bicubically from its training
window (7/7/14/7 for ImageNet) to the model's, as the authors' detection backbone does. timm's names become the
authors' first (:func:`_from_timm`).

The global-query head split is carried: the authors' files do not record which code trained them, so the model's
``global_query_split`` stands; ours hold ``global_query_split_code``, and timm's (split channels-last) set it
(logged when it differs). The withdrawn first release (2022-07-01, ``levels.i.to_q_global``) is refused.
"""
import re

import torch
from mmengine.logging import print_log
from torch import nn

from .facts import GCVIT_GLOBAL_QUERY_SPLITS as GLOBAL_QUERY_SPLITS
from .files import CheckpointError
from .registry import StateDict, register_converter, rename_key
from .resize import resize_rel_pos_table

_TABLE = re.compile(r'^levels\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$')
_FIRST_RELEASE = re.compile(r'^levels\.\d+\.to_q_global\.')
SPLIT_KEY = 'global_query_split_code'


def is_timm_layout(state_dict: StateDict) -> bool:
    """timm's GC ViT names: ``stem.down.*`` and ``stages.i.global_block.*``."""
    return any(k.startswith('stem.down.') for k in state_dict) and any('.global_block.blocks.' in k for k in state_dict)


def _detect(state_dict: StateDict) -> bool:
    keys = state_dict.keys()
    return is_timm_layout(state_dict) or (
        any('q_global_gen.to_q_global' in k or _FIRST_RELEASE.match(k) for k in keys)
        and any(k.startswith('patch_embed.conv_down.') for k in keys))


# timm's MBConv parts (under ``conv_block`` in stem/downsample, under ``conv{k}`` in the query generator)
_TIMM_MBCONV = re.compile(r'\.(?:conv_block|conv)\.(conv_dw|se\.fc1|se\.fc2|conv_pw)\.')
_TIMM_MBCONV_PARTS = {'conv_dw': '0', 'se.fc1': '2.fc.0', 'se.fc2': '2.fc.2', 'conv_pw': '3'}
_TIMM_PREFIXES = (  # (pattern, replacement): the first that matches renames the key's prefix
    (re.compile(r'^stem\.conv1\.'), 'patch_embed.proj.'),
    (re.compile(r'^stem\.down\.'), 'patch_embed.conv_down.'),
    (re.compile(r'^stages\.(\d+)\.global_block\.blocks\.conv(\d+)\.'),
     lambda m: f'levels.{m[1]}.q_global_gen.to_q_global.{int(m[2]) - 1}.conv.'),
    (re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.attn\.rel_pos\.'), r'levels.\1.blocks.\2.attn.'),
    (re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.ls([12])\.gamma$'), r'levels.\1.blocks.\2.gamma\3'),
    (re.compile(r'^stages\.(\d+)\.blocks\.'), r'levels.\1.blocks.'),
    (re.compile(r'^stages\.(\d+)\.downsample\.'), lambda m: f'levels.{int(m[1]) - 1}.downsample.'),
    (re.compile(r'^stages\.\d+\.norm\.'), 'norm.'),  # timm's last-stage norm: the classifier's
    (re.compile(r'^head\.fc\.'), 'head.'),
)


def _from_timm(state_dict: StateDict) -> StateDict:
    """timm's GC ViT keys -> the authors' (its ``stages.i.downsample`` is ``levels.{i-1}.downsample``)."""
    out = {}
    for key, value in state_dict.items():
        new = _TIMM_MBCONV.sub(lambda m: f'.conv.{_TIMM_MBCONV_PARTS[m[1]]}.', rename_key(key, _TIMM_PREFIXES))
        if new.endswith(('.conv.2.fc.0.weight', '.conv.2.fc.2.weight')) and value.dim() == 4:
            value = value.flatten(1)  # SE 1x1 conv -> linear
        out[new] = value
    return out


# output norms are new in dense models; the split code is absent from the authors' files
@register_converter('gcvit', detect=_detect,
                    allow_missing=lambda key: re.match(r'^norm\d\.(weight|bias)$', key) is not None or key == SPLIT_KEY)
def convert(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Authors' ImageNet or detection keys (or ours) -> ours, tables resized to ``model``'s windows."""
    if any(_FIRST_RELEASE.match(k) for k in state_dict):
        raise CheckpointError(
            'this GC ViT checkpoint is from the first release (2022-07-01, keys levels.i.to_q_global.*), '
            'whose global query generator read a scrambled view of the stage input; it was replaced '
            'upstream on 2022-07-26 and is not supported. Use a checkpoint released since then.')
    timm = is_timm_layout(state_dict)
    state_dict = _from_timm(state_dict) if timm else state_dict
    windows = {f'{name}.relative_position_bias_table': module.window_size for name, module in model.named_modules()
               if _TABLE.match(f'{name}.relative_position_bias_table')}
    out = {}
    for key, value in state_dict.items():
        if key.startswith(('head.', 'norm.')) or key.endswith('relative_position_index'):
            continue
        out[key] = resize_rel_pos_table(value, (windows[key], windows[key])) if key in windows else value
    if timm:  # timm computes the channels-last split
        out[SPLIT_KEY] = torch.tensor(GLOBAL_QUERY_SPLITS.index('channels_last'))
    if SPLIT_KEY in out:
        code = int(out[SPLIT_KEY])
        if code != int(model.global_query_split_code):
            print_log(f'GCViT: the checkpoint was trained with global_query_split code {code} '
                      f'({GLOBAL_QUERY_SPLITS[code] if 0 <= code < len(GLOBAL_QUERY_SPLITS) else "unknown"}); '
                      f"it replaces the constructor's '{model.global_query_split}'", logger='current')
    else:
        out[SPLIT_KEY] = model.global_query_split_code.clone()
        print_log(f"GCViT: the checkpoint does not say which global-query head split it was trained with; "
                  f"using global_query_split='{model.global_query_split}' (set 'channels_first' for the "
                  f'2022-07-26 ImageNet weights)', logger='current')
    return out
