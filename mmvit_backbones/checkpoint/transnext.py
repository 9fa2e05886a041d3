"""Key conversion for TransNeXt checkpoints: the authors' ImageNet and dense state dicts use our names, so
conversion drops only the classifier ``head.*`` and buffers that older exports may carry (position-bias indices and
coordinate tables, length scales, padding masks), all recomputed from the input size; no table needs resizing.
"""
import re

from torch import nn

from .loader import CheckpointError
from .registry import StateDict, register_converter

DROPPED_NAMES = ('relative_pos_index', 'relative_coords_table', 'seq_length_scale', 'padding_mask')


def is_transnext(state_dict: StateDict) -> bool:
    """TransNeXt keys: aggregated-attention learnable tokens or the continuous-bias MLP in ``block{i}``."""
    return any(k.startswith('block') and ('.attn.learnable_tokens' in k or '.attn.cpb_fc1.' in k)
               for k in state_dict)


@register_converter('transnext', detect=is_transnext)
def convert(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Authors' ImageNet / dense keys (or ours) -> ours, minus head and buffers. Tiny and Small share all widths,
    so a depth mismatch is named as such (blocks per stage), not by the keys that do not fit."""
    depths, found = getattr(model, 'depths', None), {}  # found: stage (from 1) -> number of blocks
    for match in filter(None, (re.match(r'block(\d+)\.(\d+)\.', key) for key in state_dict)):
        found[int(match[1])] = max(found.get(int(match[1]), 0), int(match[2]) + 1)
    if depths is not None and any(s > len(depths) or n != depths[s - 1] for s, n in found.items()):
        raise CheckpointError(f'the checkpoint has {[found.get(s, 0) for s in range(1, len(depths) + 1)]} '
                              f'blocks per stage, the model {list(depths)} (wrong arch?)')
    return {k: v for k, v in state_dict.items()  # buffer names may carry a stage number: relative_pos_index1
            if not (k.startswith('head.') or k.rsplit('.', 1)[-1].rstrip('0123456789') in DROPPED_NAMES)}
