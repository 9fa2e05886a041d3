"""Key conversion for Twins (PCPVT / SVT) checkpoints.

Accepted layouts (``backbone.``/``module.`` prefixes and containers are stripped by the loader):

* the authors' ImageNet checkpoints (``pcpvt_*.pth``, ``alt_gvt_*.pth``) and their dense backbones
  (``detection/gvt.py``, ``segmentation/gvt.py``), which share one layout::

      patch_embeds.{i}.proj / .norm        -> stages.{i}.patch_embed.proj / .norm
      blocks.{i}.{j}.<rest>                -> stages.{i}.blocks.{j}.<rest>
      pos_block.{i}.proj.0                 -> stages.{i}.pos_block.proj
      norm_list.{i}       (SVT dense only) -> stages.{i}.norm

  The classification-only ``norm.*`` and ``head.*`` are left unconverted, so the load report lists
  them as unexpected;
* timm's port (``timm/models/twins.py``, the ``twins_*.in1k`` files): the authors' names exactly;
* mmseg 1.x's ``PCPVT``/``SVT`` (``tools/model_converters/twins2mmseg.py`` layout; mmseg's
  ``pretrain/twins/*.pth`` files): ``layers``, ``patch_embeds.{i}.projection``,
  ``position_encodings.{i}.proj``, GSA ``attn.attn.in_proj_*`` (q and kv concatenated, q first) and
  ``attn.attn.out_proj``, ``ffn.layers.0.0`` / ``ffn.layers.1``;
* mmpretrain 1.x's ``PCPVT``/``SVT`` (its ``twins-*_3rdparty_*_in1k`` files): ``stages.{i}.{j}`` blocks
  whose attention keeps the authors' names (``q``/``kv``/``sr``/``norm``/``proj``, ``qkv``), with
  ``patch_embeds.{i}.projection``, ``position_encodings.{i}.proj``, ``ffn.layers.0.0`` / ``ffn.layers.1``
  and ``norm_after_stage{i}`` (the classifier's final norm after the last stage, dropped like the
  authors' ``norm``);
* this package's own keys (``stages.{i}.blocks.{j}.*``), passed through unchanged.

A checkpoint of the other Twins variant (SVT weights into a PCPVT model or the reverse) is refused
with a message naming both.
"""
import re
from typing import Dict

import torch
from torch import nn

from .loader import CheckpointError
from .registry import StateDict, register_converter

_TWINS_KEY = re.compile(r'^(pos_block\.\d+\.proj\.|position_encodings\.\d+\.proj\.|stages\.\d+\.pos_block\.proj\.)')
_SVT_OUTPUT_NORM = re.compile(r'^stages\.\d+\.norm\.(weight|bias)$')

_OFFICIAL_RULES = [
    (re.compile(r'^patch_embeds\.(\d+)\.proj\.'), r'stages.\1.patch_embed.proj.'),
    (re.compile(r'^patch_embeds\.(\d+)\.norm\.'), r'stages.\1.patch_embed.norm.'),
    (re.compile(r'^blocks\.(\d+)\.(\d+)\.'), r'stages.\1.blocks.\2.'),
    (re.compile(r'^pos_block\.(\d+)\.proj\.0\.'), r'stages.\1.pos_block.proj.'),
    (re.compile(r'^norm_list\.(\d+)\.'), r'stages.\1.norm.'),
]
_MMSEG_RULES = [
    (re.compile(r'^patch_embeds\.(\d+)\.projection\.'), r'stages.\1.patch_embed.proj.'),
    (re.compile(r'^patch_embeds\.(\d+)\.norm\.'), r'stages.\1.patch_embed.norm.'),
    (re.compile(r'^position_encodings\.(\d+)\.proj\.'), r'stages.\1.pos_block.proj.'),
    (re.compile(r'^norm_list\.(\d+)\.'), r'stages.\1.norm.'),
    (re.compile(r'^layers\.(\d+)\.(\d+)\.attn\.attn\.out_proj\.'), r'stages.\1.blocks.\2.attn.proj.'),
    (re.compile(r'^layers\.(\d+)\.(\d+)\.ffn\.layers\.0\.0\.'), r'stages.\1.blocks.\2.mlp.fc1.'),
    (re.compile(r'^layers\.(\d+)\.(\d+)\.ffn\.layers\.1\.'), r'stages.\1.blocks.\2.mlp.fc2.'),
    (re.compile(r'^layers\.(\d+)\.(\d+)\.'), r'stages.\1.blocks.\2.'),
]
_MMSEG_IN_PROJ = re.compile(r'^layers\.(\d+)\.(\d+)\.attn\.attn\.in_proj_(weight|bias)$')
_MMPRETRAIN_BLOCK = re.compile(r'^stages\.\d+\.\d+\.')
_MMPRETRAIN_RULES = [
    (re.compile(r'^patch_embeds\.(\d+)\.projection\.'), r'stages.\1.patch_embed.proj.'),
    (re.compile(r'^patch_embeds\.(\d+)\.norm\.'), r'stages.\1.patch_embed.norm.'),
    (re.compile(r'^position_encodings\.(\d+)\.proj\.'), r'stages.\1.pos_block.proj.'),
    (re.compile(r'^stages\.(\d+)\.(\d+)\.ffn\.layers\.0\.0\.'), r'stages.\1.blocks.\2.mlp.fc1.'),
    (re.compile(r'^stages\.(\d+)\.(\d+)\.ffn\.layers\.1\.'), r'stages.\1.blocks.\2.mlp.fc2.'),
    (re.compile(r'^stages\.(\d+)\.(\d+)\.'), r'stages.\1.blocks.\2.'),
    (re.compile(r'^norm_after_stage3\.'), 'norm.'),  # the classifier's final norm
    (re.compile(r'^norm_after_stage(\d+)\.'), r'stages.\1.norm.'),
]


def is_twins(state_dict: StateDict) -> bool:
    """Keys of a Twins checkpoint: PEG convs in the authors', mmseg's or this package's layout."""
    return any(_TWINS_KEY.match(k) for k in state_dict)


def checkpoint_variant(state_dict: StateDict) -> str:
    """'SVT' when the checkpoint has LSA blocks (``attn.qkv``), else 'PCPVT'."""
    return 'SVT' if any('.attn.qkv.' in k for k in state_dict) else 'PCPVT'


def _rename(key: str, rules) -> str:
    for pattern, repl in rules:
        new, n = pattern.subn(repl, key)
        if n:
            return new
    return key


def _convert_mmseg(state_dict: StateDict) -> StateDict:
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        match = _MMSEG_IN_PROJ.match(key)
        if match:  # nn.MultiheadAttention in_proj = cat([q, kv]) along the output dimension
            i, j, kind = match.groups()
            dims = value.shape[0] // 3
            out[f'stages.{i}.blocks.{j}.attn.q.{kind}'] = value[:dims]
            out[f'stages.{i}.blocks.{j}.attn.kv.{kind}'] = value[dims:]
        else:
            out[_rename(key, _MMSEG_RULES)] = value
    return out


def _model_variant(model: nn.Module) -> str:
    settings = getattr(model, 'arch_settings', {})
    return 'SVT' if settings.get('window_sizes') is not None else 'PCPVT'


@register_converter('twins', detect=is_twins, allow_missing=lambda key: bool(_SVT_OUTPUT_NORM.match(key)))
def convert_twins(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Authors' (ImageNet or dense, and timm's), mmseg's or mmpretrain's Twins keys -> this package's keys;
    ours pass through."""
    mmpretrain = any(_MMPRETRAIN_BLOCK.match(k) for k in state_dict)
    ours = not mmpretrain and any(k.startswith('stages.') for k in state_dict)
    ckpt_variant, model_variant = checkpoint_variant(state_dict), _model_variant(model)
    if ckpt_variant != model_variant:
        raise CheckpointError(f'this is a Twins-{ckpt_variant} checkpoint but the model is {type(model).__name__} '
                              f'(Twins-{model_variant}); use Twins{ckpt_variant} with the matching arch')
    if ours:
        return dict(state_dict)
    if mmpretrain:
        return {_rename(k, _MMPRETRAIN_RULES): v for k, v in state_dict.items()}
    if any(k.startswith('layers.') or k.startswith('position_encodings.') for k in state_dict):
        return _convert_mmseg(state_dict)
    return {_rename(k, _OFFICIAL_RULES): v for k, v in state_dict.items()}
