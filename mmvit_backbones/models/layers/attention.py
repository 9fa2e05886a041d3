"""Plain softmax attention: PyTorch's fused kernel, or its written-out reference (the tests compare them)."""
from typing import Optional

import torch
import torch.nn.functional as F

from ...utils.fast_paths import use_reference


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
                      scale: Optional[float] = None, reference: bool = False) -> torch.Tensor:
    """``softmax(q k^T * scale + mask) v`` over ``(..., L, d)`` tensors; ``scale`` defaults to ``d**-0.5``.

    ``mask`` is additive (float) or bool, True for the keys that may be attended. ``F.scaled_dot_product_attention``
    unless the reference is asked for (``reference=True`` or :func:`~mmvit_backbones.utils.fast_paths.use_reference`).
    """
    if not (reference or use_reference()):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    attn = (q * (q.shape[-1]**-0.5 if scale is None else scale)) @ k.transpose(-2, -1)
    if mask is not None:
        attn = attn.masked_fill(~mask, float('-inf')) if mask.dtype == torch.bool else attn + mask
    return attn.softmax(dim=-1) @ v
