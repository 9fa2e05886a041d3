"""Swin's relative-position index (Liu et al. 2021, Sec. 3.2), written once for every window attention."""
from typing import Optional

import torch


def relative_position_index(window_h: int, window_w: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """``(N, N)`` long index, ``N = window_h * window_w``, of each (query, key) offset ``q - k`` in a
    ``(2 window_h - 1) x (2 window_w - 1)`` table read row-major: ``(dh + Wh - 1) * (2 Ww - 1) + dw + Ww - 1``."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_h, device=device), torch.arange(window_w, device=device),
                                        indexing='ij')).flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N query, N key)
    return (rel[0] + window_h - 1) * (2 * window_w - 1) + (rel[1] + window_w - 1)


def relative_offsets(window_h: int, window_w: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """``((2Wh-1)(2Ww-1), 2)`` float offsets ``(dh, dw)`` in the order of the table above (dh-major)."""
    dh = torch.arange(1 - window_h, window_h, device=device)
    dw = torch.arange(1 - window_w, window_w, device=device)
    return torch.stack(torch.meshgrid(dh, dw, indexing='ij'), dim=-1).reshape(-1, 2).float()
