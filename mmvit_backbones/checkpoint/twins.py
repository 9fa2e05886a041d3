"""Key conversion for Twins (PCPVT / SVT) checkpoints.

Accepted layouts (``backbone.``/``module.`` prefixes and containers are stripped by the loader):

* the authors' ImageNet checkpoints (``pcpvt_*.pth``, ``alt_gvt_*.pth``) and their dense backbones
  (``detection/gvt.py``, ``segmentation/gvt.py``; ``norm_list`` in the SVT one), which share one layout
  (``patch_embeds.{i}``, ``blocks.{i}.{j}``, ``pos_block.{i}``); the classification-only ``norm.*`` and
  ``head.*`` are left unconverted, so the load report lists them as unexpected;
* timm's port (``timm/models/twins.py``, the ``twins_*.in1k`` files): the authors' names exactly;
* mmseg 1.x's ``PCPVT``/``SVT`` (``tools/model_converters/twins2mmseg.py`` layout; mmseg's
  ``pretrain/twins/*.pth`` files): ``layers``, ``patch_embeds.{i}.projection``,
  ``position_encodings.{i}.proj``, GSA ``attn.attn.in_proj_*`` (q and kv concatenated, q first) and
  ``attn.attn.out_proj``, ``ffn.layers.0.0`` / ``ffn.layers.1``;
* mmpretrain 1.x's ``PCPVT``/``SVT`` (its ``twins-*_3rdparty_*_in1k`` files): mmseg's names, but
  ``stages.{i}.{j}`` blocks whose attention keeps the authors' names, and ``norm_after_stage{i}`` (the last
  one is the classifier's final norm, dropped like the authors' ``norm``);
* this package's own keys (``stages.{i}.blocks.{j}.*``), passed through unchanged.

A checkpoint of the other Twins variant (SVT weights into a PCPVT model or the reverse) is refused
with a message naming both.
"""
import re
from typing import Dict

import torch
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


def checkpoint_variant(state_dict: StateDict) -> str:
    """'SVT' when the checkpoint has LSA blocks (``attn.qkv``), else 'PCPVT'."""
    return 'SVT' if any('.attn.qkv.' in k for k in state_dict) else 'PCPVT'


@register_converter('twins', detect=is_twins, allow_missing=lambda key: bool(_SVT_OUTPUT_NORM.match(key)))
def convert_twins(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Authors' (ImageNet or dense, and timm's), mmseg's or mmpretrain's Twins keys -> this package's keys;
    ours pass through."""
    ckpt_variant = checkpoint_variant(state_dict)
    model_variant = 'SVT' if getattr(model, 'arch_settings', {}).get('window_sizes') is not None else 'PCPVT'
    if ckpt_variant != model_variant:
        raise CheckpointError(f'this is a Twins-{ckpt_variant} checkpoint but the model is {type(model).__name__} '
                              f'(Twins-{model_variant}); use Twins{ckpt_variant} with the matching arch')
    out: Dict[str, torch.Tensor] = {}
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
