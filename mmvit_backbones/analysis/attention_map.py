"""Attention maps of one block: where the centre query looks (TransNeXt Fig. 7/8 style), or XCiT's channel
(cross-covariance) attention.

Nothing in the models changes: hooks on the block (``model.stage_blocks(stage)[block]``) record its inputs, and
while it runs :func:`record_sdpa` writes ``F.scaled_dot_product_attention`` out (``softmax(q k^T * scale + mask) v``)
to keep the probabilities. The block's ``attention_map(inputs, probs)`` maps them back to positions of the stage's
map or, for an attention that is not an SDPA call (TransNeXt's aggregated, XCiT's cross-covariance attention),
recomputes it from the recorded inputs with the block's own layers.
"""
import contextlib
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn


class _SDPARecorder:
    """Replaces ``F.scaled_dot_product_attention`` while :attr:`active`, keeping the probabilities."""

    def __init__(self) -> None:
        self.active = False
        self.probs: List[torch.Tensor] = []
        self._orig = F.scaled_dot_product_attention

    def __call__(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if not self.active:
            return self._orig(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                              **kwargs)
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        logits = (q.float() @ k.float().transpose(-2, -1)) * scale
        if attn_mask is not None:
            logits = logits.masked_fill(~attn_mask, float('-inf')) if attn_mask.dtype == torch.bool \
                else logits + attn_mask.float()
        probs = logits.softmax(dim=-1)
        self.probs.append(probs.detach())
        return (probs @ v.float()).to(v.dtype)


@contextlib.contextmanager
def record_sdpa():
    recorder = _SDPARecorder()
    F.scaled_dot_product_attention = recorder
    try:
        yield recorder
    finally:
        F.scaled_dot_product_attention = recorder._orig


def attention_map(model: nn.Module, image: torch.Tensor, stage: int, block: int) -> Dict[str, object]:
    """The attention of block ``block`` of stage ``stage`` on ``image`` ``(1, 3, H, W)``: ``kind='spatial'`` with
    ``map`` ``(h, w)`` (the centre query's head-averaged attention over the stage's map, summing to 1 over the keys
    it sees), ``query`` ``(row, col)`` and ``description``; or ``kind='channel'`` with ``map`` ``(C, C)`` (XCiT:
    block-diagonal over heads)."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'attention_map expects one image (1, C, H, W), got {tuple(image.shape)}')
    model.eval()
    blocks = model.stage_blocks(stage)
    if not 0 <= block < len(blocks):
        raise ValueError(f'{type(model).__name__} has no block {block} in stage {stage} ({len(blocks)} blocks)')
    blk = blocks[block]
    captured = {}

    def start(module, args):
        captured['inputs'] = args
        recorder.active = True

    with record_sdpa() as recorder, torch.no_grad():
        on = blk.register_forward_pre_hook(start)
        off = blk.register_forward_hook(lambda m, a, o: setattr(recorder, 'active', False))
        try:
            model(image)
        finally:
            on.remove()
            off.remove()
        probs = torch.cat(recorder.probs) if recorder.probs else None  # chunked inference: several calls
        return blk.attention_map(captured['inputs'], probs)

