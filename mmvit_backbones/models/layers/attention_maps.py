"""Attention maps of the centre query from recorded attention probabilities (analysis tools): a block's
``attention_map(inputs, probs)`` (see :meth:`PyramidBackbone.stage_blocks`) partitions a map of position
indices exactly as it partitions its tokens, so each probability lands on the cell its key came from.
"""
from typing import Dict

import torch
import torch.nn.functional as F

from .padding import round_up
from .windows import group_partition


def spatial_result(out: torch.Tensor, h: int, w: int, description: str) -> Dict[str, object]:
    return dict(kind='spatial', map=out.reshape(h, w).numpy(), query=(h // 2, w // 2), description=description)


def grouped_attention_map(probs: torch.Tensor, h: int, w: int, group_h: int, group_w: int, interval: int,
                          description: str) -> Dict[str, object]:
    """``probs`` ``(G, heads, N, N)`` of attention inside the groups (:func:`~.windows.group_partition`) of the
    ``h x w`` map zero-padded bottom/right -> the head-averaged attention of the centre query over the map."""
    hp, wp = round_up(h, group_h * interval), round_up(w, group_w * interval)
    pos = torch.full((1, hp, wp, 1), -1.0)  # row-major position index of each map cell, -1 on the padding
    pos[0, :h, :w, 0] = torch.arange(h * w, dtype=torch.float32).view(h, w)
    pos = group_partition(pos, group_h, group_w, interval)[..., 0]  # (G, N)
    centre = (h // 2) * w + w // 2
    g, t = (pos == centre).nonzero()[0].tolist()
    row = probs[g, :, t].mean(0)  # (N,)
    keys = pos[g].long()
    valid = keys >= 0
    out = torch.zeros(h * w)
    out[keys[valid]] = row[valid]
    return spatial_result(out, h, w, description)


def subsampled_attention_map(probs: torch.Tensor, h: int, w: int, sr: int) -> Dict[str, object]:
    """Every query attends to all tokens (``sr == 1``) or to the map sub-sampled by ``sr x sr`` (floor);
    a sub-sampled key's weight is spread over the cells it summarises."""
    kh, kw = (h // sr, w // sr) if sr > 1 else (h, w)
    row = probs[0, :, (h // 2) * w + w // 2].mean(0).view(1, 1, kh, kw)
    if sr > 1:
        row = F.interpolate(row, scale_factor=sr, mode='nearest') / sr**2
        row = F.pad(row, (0, w - row.shape[-1], 0, h - row.shape[-2]))
    desc = f'global sub-sampled attention (keys {kh}x{kw}, sr {sr})' if sr > 1 else 'full attention'
    return spatial_result(row.reshape(-1), h, w, desc)


def channel_attention_map(probs: torch.Tensor, description: str) -> Dict[str, object]:
    """``(heads, d, d)`` channel attention as a block-diagonal ``(C, C)`` map."""
    return dict(kind='channel', map=torch.block_diag(*probs).numpy(), heads=probs.shape[0], description=description)
