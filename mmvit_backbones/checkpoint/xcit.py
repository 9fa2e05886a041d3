"""Key conversion for XCiT checkpoints.

Accepted layouts (after the loader has unwrapped ``model``/``state_dict`` and ``backbone.``):

* the authors' ImageNet models (``xcit.py``; timm's port differs only in ``pos_embed.`` for
  ``pos_embeder.``): the class token, class-attention blocks, final norm and head are
  classification-only and dropped; the pyramid is not in them and keeps its initialisation;
* the authors' detection/segmentation backbone (same names plus the ``fpn1``/``fpn2`` adapters);
* this package's own keys, passed through unchanged.

Renames (authors -> ours); the blocks keep the authors' names:

    patch_embed.proj.{2j}.0.*          -> patch_embed.convs.{j}.conv.*
    patch_embed.proj.{2j}.1.*          -> patch_embed.convs.{j}.bn.*
    pos_embeder.token_projection.*     -> pos_embed.proj.*
    fpn1.0 / fpn1.1 / fpn1.3 (p16)     -> pyramid.levels.0.up1 / .bn / .up2
    fpn1.0 (p8), fpn2.0 (p16)          -> pyramid.levels.{0,1}.up1

XCiT has no size-dependent tables (the Fourier position code is computed for every input size), so
nothing is resized.
"""
import re

from .registry import StateDict, is_classifier_key, register_converter

CLASSIFICATION_ONLY = ('cls_token', 'cls_attn_blocks.', 'norm.', 'head.', 'dist_token', 'head_dist.')

_PATCH_EMBED = re.compile(r'^patch_embed\.proj\.(\d+)\.([01])\.(.+)$')
_FPN = {  # (patch_size, authors' prefix) -> ours
    (16, 'fpn1.0.'): 'pyramid.levels.0.up1.',
    (16, 'fpn1.1.'): 'pyramid.levels.0.bn.',
    (16, 'fpn1.3.'): 'pyramid.levels.0.up2.',
    (16, 'fpn2.0.'): 'pyramid.levels.1.up1.',
    (8, 'fpn1.0.'): 'pyramid.levels.0.up1.',
}


def is_xcit(state_dict: StateDict) -> bool:
    """XCiT keys (authors', timm's or ours) have the local patch interaction ``local_mp``."""
    return any('.local_mp.' in key for key in state_dict)


def _rename(key: str, patch_size: int, norm_names) -> str:
    match = _PATCH_EMBED.match(key)
    if match:
        index, part, rest = int(match.group(1)), match.group(2), match.group(3)
        conv = index // 2
        name = 'conv' if part == '0' else (norm_names[conv] if conv < len(norm_names) else 'bn')
        return f'patch_embed.convs.{conv}.{name}.{rest}'
    for old in ('pos_embeder.token_projection.', 'pos_embed.token_projection.'):
        if key.startswith(old):
            return 'pos_embed.proj.' + key[len(old):]
    for (size, old), new in _FPN.items():
        if size == patch_size and key.startswith(old):
            return new + key[len(old):]
    return key


_PYRAMID_LEVEL = re.compile(r'^pyramid\.levels\.(\d+)\.')


def _allow_unexpected(key: str, model) -> bool:
    """Classifier keys, and the pyramid levels of outputs ``out_indices`` does not return (not built)."""
    match = _PYRAMID_LEVEL.match(key)
    return is_classifier_key(key) or (match is not None and match.group(1) not in model.pyramid.levels)


@register_converter('xcit', detect=is_xcit, allow_missing=lambda key: key.startswith('pyramid.'),
                    allow_unexpected=_allow_unexpected)
def convert(state_dict: StateDict, model) -> StateDict:
    """Authors' (ImageNet or dense) or our XCiT keys -> this package's keys for ``model``."""
    norm_names = [conv.norm_name for conv in model.patch_embed.convs]
    out = {}
    for key, value in state_dict.items():
        if key.startswith(CLASSIFICATION_ONLY):
            continue
        out[_rename(key, model.patch_size, norm_names)] = value
    return out
