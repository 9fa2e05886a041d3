"""Key conversion for GC ViT checkpoints (NVlabs/GCVit ImageNet releases and their detection backbone).

This package keeps the authors' parameter names (``patch_embed.*``, ``levels.i.q_global_gen.*``,
``levels.i.blocks.j.*``, ``levels.i.downsample.*``, ``norm0..3``), so conversion is:

- drop the classifier (``norm.*``, ``head.*``) and the ``relative_position_index`` buffers (rebuilt
  for the model's window);
- resize every ``relative_position_bias_table`` bicubically from the window it was trained with
  (7/7/14/7 for the ImageNet releases) to the model's dense window (24 by default), as the authors'
  detection backbone does after loading (``align_corners=False``, float32);
- carry the global-query head split. The authors' checkpoints do not record which code they were
  trained with (the 2022-07-26 and the later releases have the same keys and shapes), so for them the
  model's ``global_query_split`` argument stands; this package's own checkpoints hold
  ``global_query_split_code`` and restore it.

The first release (2022-07-01) kept the generator at ``levels.i.to_q_global`` and fed it a scrambled
view of the stage input; it was withdrawn upstream and is refused with an explanation.
"""
import re

from mmengine.logging import print_log
from torch import nn

from .facts import GCVIT_GLOBAL_QUERY_SPLITS as GLOBAL_QUERY_SPLITS
from .registry import StateDict, is_classifier_key, register_converter
from .resize import resize_rel_pos_table

_TABLE = re.compile(r'^levels\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$')
_FIRST_RELEASE = re.compile(r'^levels\.\d+\.to_q_global\.')
SPLIT_KEY = 'global_query_split_code'


def _detect(state_dict: StateDict) -> bool:
    keys = state_dict.keys()
    return any('q_global_gen.to_q_global' in k or _FIRST_RELEASE.match(k) for k in keys) \
        and any(k.startswith('patch_embed.conv_down.') for k in keys)


def _allow_missing(key: str) -> bool:
    # output norms are new in dense models; the split code is absent from the authors' files
    return re.match(r'^norm\d\.(weight|bias)$', key) is not None or key == SPLIT_KEY


_LEVEL = re.compile(r'^levels\.(\d+)\.(downsample\.)?')
_OUTPUT_NORM = re.compile(r'^norm(\d)\.')


def _allow_unexpected(key: str, model: nn.Module) -> bool:
    """Classifier keys, and what ``out_indices`` leaves unbuilt: later levels, the last level's
    downsample, output norms of stages that are not returned."""
    if is_classifier_key(key):
        return True
    built = len(getattr(model, 'levels', ()))
    level = _LEVEL.match(key)
    if level:
        index = int(level.group(1))
        return index >= built or (index == built - 1 and level.group(2) is not None)
    norm = _OUTPUT_NORM.match(key)
    return norm is not None and int(norm.group(1)) not in getattr(model, 'out_indices', ())


@register_converter('gcvit', detect=_detect, allow_missing=_allow_missing, allow_unexpected=_allow_unexpected)
def convert(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Authors' ImageNet or detection keys (or ours) -> ours, tables resized to ``model``'s windows."""
    if any(_FIRST_RELEASE.match(k) for k in state_dict):
        from .loader import CheckpointError
        raise CheckpointError(
            'this GC ViT checkpoint is from the first release (2022-07-01, keys levels.i.to_q_global.*), '
            'whose global query generator read a scrambled view of the stage input; it was replaced '
            'upstream on 2022-07-26 and is not supported. Use a checkpoint released since then.')
    out = {}
    for key, value in state_dict.items():
        if key.startswith(('head.', 'norm.')) or key.endswith('relative_position_index'):
            continue
        match = _TABLE.match(key)
        if match:
            stage = int(match.group(1))
            if stage < len(getattr(model, 'levels', ())):
                window = model.levels[stage].blocks[int(match.group(2))].attn.window_size \
                    if int(match.group(2)) < len(model.levels[stage].blocks) else None
                if window is not None:
                    value = resize_rel_pos_table(value, (window, window))
        out[key] = value
    if SPLIT_KEY in out and hasattr(model, 'global_query_split_code'):
        code = int(out[SPLIT_KEY])
        if code != int(model.global_query_split_code):
            print_log(f'GCViT: the checkpoint was trained with global_query_split code {code} '
                      f'({GLOBAL_QUERY_SPLITS[code] if 0 <= code < len(GLOBAL_QUERY_SPLITS) else "unknown"}); '
                      f"it replaces the constructor's '{model.global_query_split}'", logger='current')
    elif hasattr(model, 'global_query_split'):
        out[SPLIT_KEY] = model.global_query_split_code.clone()
        print_log(f"GCViT: the checkpoint does not say which global-query head split it was trained with; "
                  f"using global_query_split='{model.global_query_split}' (set 'channels_first' for the "
                  f'2022-07-26 ImageNet weights)', logger='current')
    return out
