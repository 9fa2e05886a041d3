"""Key conversion for XCiT checkpoints: the authors' ImageNet models (timm's port: ``pos_embed.`` for
``pos_embeder.``), their dense backbone (plus the ``fpn1``/``fpn2`` adapters), mmpretrain 1.x's ``XCiT``
(``xca_layers.``, mmcv wrappers: :data:`_MMPRETRAIN`) and ours (passed through). The patch embedding, position
encoding and dense adapters get our names; the classification-only parts are dropped; the pyramid keeps its
initialisation. Nothing is resized: the Fourier position code is computed for every input size.
"""
import re

from .registry import StateDict, is_classifier_key, register_converter, rename_key

CLASSIFICATION_ONLY = ('cls_token', 'cls_attn_blocks.', 'ca_layers.', 'norm.', 'head.', 'dist_token', 'head_dist.')

_PATCH_EMBED = re.compile(r'^patch_embed\.proj\.(\d+)\.([01])\.')  # the authors' (conv, BN, GELU) x n
_BLOCK = re.compile(r'^blocks\.(\d+)\.')
_POS_EMBED = (re.compile(r'^pos_embed(?:er)?\.token_projection\.'), 'pos_embed.proj.')  # authors' / timm's
_FPN = {  # patch size -> (the authors' dense adapter, our pyramid level) rules
    16: [(re.compile(r'^fpn1\.0\.'), 'pyramid.levels.0.up1.'), (re.compile(r'^fpn1\.1\.'), 'pyramid.levels.0.bn.'),
         (re.compile(r'^fpn1\.3\.'), 'pyramid.levels.0.up2.'), (re.compile(r'^fpn2\.0\.'), 'pyramid.levels.1.up1.')],
    8: [(re.compile(r'^fpn1\.0\.'), 'pyramid.levels.0.up1.')],
}
_MMPRETRAIN = (  # (pattern, replacement) applied in turn: mmpretrain's names -> the authors' (or ours)
    (re.compile(r'^patch_embed\.proj\.(\d+)\.conv\.'), lambda m: f'patch_embed.proj.{2 * int(m[1])}.0.'),
    (re.compile(r'^patch_embed\.proj\.(\d+)\.bn\.'), lambda m: f'patch_embed.proj.{2 * int(m[1])}.1.'),
    (re.compile(r'^pos_embed\.token_projection\.conv\.'), 'pos_embed.token_projection.'),
    (re.compile(r'^xca_layers\.(\d+)\.'), r'blocks.\1.'),
    (re.compile(r'\.local_mp\.conv1\.conv\.'), '.local_mp.conv1.'),
    (re.compile(r'\.local_mp\.conv1\.bn\.'), '.local_mp.bn.'),
    (re.compile(r'\.local_mp\.conv2\.conv\.'), '.local_mp.conv2.'),
    (re.compile(r'\.ffn\.layers\.0\.0\.'), '.mlp.fc1.'),
    (re.compile(r'\.ffn\.layers\.1\.'), '.mlp.fc2.'),
)


def is_xcit(state_dict: StateDict) -> bool:
    """XCiT keys (authors', timm's or ours) have the local patch interaction ``local_mp``."""
    return any('.local_mp.' in key for key in state_dict)


def _allow_unexpected(key: str, model) -> bool:
    """Classifier keys, and the blocks after the last of ``tap_blocks`` (no output needs them, so even a
    full-depth model does not build them); the loader accepts what ``out_indices`` leaves unbuilt."""
    block = _BLOCK.match(key)
    return is_classifier_key(key) or (block is not None and model.tap_blocks[-1] < int(block[1]) < model.depth)


@register_converter('xcit', detect=is_xcit, allow_missing=lambda key: key.startswith('pyramid.'),
                    allow_unexpected=_allow_unexpected)
def convert(state_dict: StateDict, model) -> StateDict:
    """Any layout of the module docstring -> this package's keys for ``model``."""
    norm_names = [conv.norm_name for conv in model.patch_embed.convs]

    def patch_embed(match) -> str:  # proj.{2j}.0: conv j; proj.{2j}.1: its norm
        conv = int(match[1]) // 2
        norm = norm_names[conv] if conv < len(norm_names) else 'bn'  # a deeper checkpoint's extra convs
        return f"patch_embed.convs.{conv}.{'conv' if match[2] == '0' else norm}."

    rules = [(_PATCH_EMBED, patch_embed), _POS_EMBED] + _FPN[model.patch_size]
    mmpretrain = any(key.startswith('xca_layers.') for key in state_dict)
    out = {}
    for key, value in state_dict.items():
        if key.startswith(CLASSIFICATION_ONLY):
            continue
        for pattern, repl in _MMPRETRAIN if mmpretrain else ():
            key = pattern.sub(repl, key)
        out[rename_key(key, rules)] = value
    return out
