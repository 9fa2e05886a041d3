"""Key conversion for CrossFormer / CrossFormer++ checkpoints: the authors' ImageNet and dense state dicts use our
names already, so conversion drops only the classifier (``norm.*``, ``head.*``) and the v1 buffers ``attn.biases``,
``attn.relative_position_index`` and ``attn_mask``, which depend on the 224 training size (the dense model builds
them per input shape). Nothing is resized: the dynamic position bias is an MLP of relative coordinates.
"""
import re

from .loader import CheckpointError
from .registry import StateDict, register_converter

_CLASSIFIER = re.compile(r'^(norm|head)\.')
_SHAPE_BUFFERS = re.compile(r'\.(attn\.biases|attn\.relative_position_index|attn_mask)$')


def _detect(state_dict: StateDict) -> bool:
    return any(k.startswith('patch_embed.projs.') for k in state_dict) and \
        any('.attn.pos.pos_proj.' in k for k in state_dict)


@register_converter('crossformer', detect=_detect)
def convert(state_dict: StateDict, model) -> StateDict:
    """Official ImageNet / dense CrossFormer(++) keys -> ours (drops classifier and shape buffers)."""
    own, is_unbuilt = model.state_dict(), getattr(model, 'is_unbuilt_key', lambda key: False)
    extra_acl = sorted(k for k in state_dict if '.ex_conv.' in k and k not in own and not is_unbuilt(k))
    if extra_acl:  # a CrossFormer++ checkpoint into a CrossFormer model would silently lose its ACL layers
        raise CheckpointError(f'{type(model).__name__}: the checkpoint has CrossFormer++ amplitude cooling layers '
                              f'({extra_acl[0]}, ... {len(extra_acl)} in all) that this model lacks; use the '
                              f"matching 'pp-*' arch")
    return {k: v for k, v in state_dict.items() if not _CLASSIFIER.match(k) and not _SHAPE_BUFFERS.search(k)}
