"""Key conversion for Twins (PCPVT / SVT) checkpoints; one rename table (:data:`_RULES`) serves every layout:
the authors' ImageNet and dense checkpoints and timm's port (``patch_embeds.{i}``, ``blocks.{i}.{j}``,
``pos_block.{i}``, ``norm_list`` in the dense SVT), mmseg 1.x's ``PCPVT``/``SVT`` (``layers``, ``projection``,
``position_encodings``, GSA ``attn.attn.in_proj_*`` = cat(q, kv), ``ffn.layers``), mmpretrain 1.x's (mmseg's names
but ``stages.{i}.{j}`` blocks with the authors' attention, ``norm_after_stage{i}``) and ours (unchanged). The
classifier's keys stay unconverted (reported as unused); the other variant's weights (SVT into PCPVT or the
reverse) are refused, naming both.
"""
import re

from torch import nn

from .loader import CheckpointError
from .registry import StateDict, register_converter, rename_key

_TWINS_KEY = re.compile(r'^(pos_block\.\d+\.proj\.|position_encodings\.\d+\.proj\.|stages\.\d+\.pos_block\.proj\.)')
_SVT_OUTPUT_NORM = re.compile(r'^stages\.\d+\.norm\.(weight|bias)$')

# One (pattern, replacement) table for every layout (their names do not collide): the first rule that matches
# renames the key; this package's own keys match none.
_RULES = [
    (re.compile(r'^patch_embeds\.(\d+)\.proj\.'), r'stages.\1.patch_embed.proj.'),  # the authors' (and timm's)
    (re.compile(r'^blocks\.(\d+)\.(\d+)\.'), r'stages.\1.blocks.\2.'),
    (re.compile(r'^pos_block\.(\d+)\.proj\.0\.'), r'stages.\1.pos_block.proj.'),
    (re.compile(r'^patch_embeds\.(\d+)\.norm\.'), r'stages.\1.patch_embed.norm.'),  # every layout
    (re.compile(r'^norm_list\.(\d+)\.'), r'stages.\1.norm.'),  # the authors' dense SVT and mmseg's
    (re.compile(r'^patch_embeds\.(\d+)\.projection\.'), r'stages.\1.patch_embed.proj.'),  # mmseg and mmpretrain
    (re.compile(r'^position_encodings\.(\d+)\.proj\.'), r'stages.\1.pos_block.proj.'),
    (re.compile(r'^norm_after_stage3\.'), 'norm.'),  # mmpretrain: the classifier's final norm
    (re.compile(r'^norm_after_stage(\d+)\.'), r'stages.\1.norm.'),
    (re.compile(r'^layers\.(\d+)\.(\d+)\.attn\.attn\.out_proj\.'), r'stages.\1.blocks.\2.attn.proj.'),  # mmseg
    # mmseg's (``layers``) and mmpretrain's (``stages.{i}.{j}``) blocks
    (re.compile(r'^(?:layers|stages)\.(\d+)\.(\d+)\.ffn\.layers\.0\.0\.'), r'stages.\1.blocks.\2.mlp.fc1.'),
    (re.compile(r'^(?:layers|stages)\.(\d+)\.(\d+)\.ffn\.layers\.1\.'), r'stages.\1.blocks.\2.mlp.fc2.'),
    (re.compile(r'^(?:layers|stages)\.(\d+)\.(\d+)\.'), r'stages.\1.blocks.\2.'),
]
_MMSEG_IN_PROJ = re.compile(r'^layers\.(\d+)\.(\d+)\.attn\.attn\.in_proj_(weight|bias)$')


def is_twins(state_dict: StateDict) -> bool:
    """Keys of a Twins checkpoint: PEG convs in the authors', mmseg's or this package's layout."""
    return any(_TWINS_KEY.match(k) for k in state_dict)


@register_converter('twins', detect=is_twins, allow_missing=lambda key: bool(_SVT_OUTPUT_NORM.match(key)))
def convert_twins(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Any layout of the module docstring -> this package's keys."""
    ckpt_variant = 'SVT' if any('.attn.qkv.' in k for k in state_dict) else 'PCPVT'  # SVT's LSA blocks: attn.qkv
    model_variant = 'SVT' if getattr(model, 'arch_settings', {}).get('window_sizes') is not None else 'PCPVT'
    if ckpt_variant != model_variant:
        raise CheckpointError(f'this is a Twins-{ckpt_variant} checkpoint but the model is {type(model).__name__} '
                              f'(Twins-{model_variant}); use Twins{ckpt_variant} with the matching arch')
    out = {}
    for key, value in state_dict.items():
        match = _MMSEG_IN_PROJ.match(key)
        if match:  # nn.MultiheadAttention in_proj = cat([q, kv]) along the output dimension
            i, j, kind = match.groups()
            dims = value.shape[0] // 3
            out[f'stages.{i}.blocks.{j}.attn.q.{kind}'] = value[:dims]
            out[f'stages.{i}.blocks.{j}.attn.kv.{kind}'] = value[dims:]
        else:
            out[rename_key(key, _RULES)] = value
    return out
