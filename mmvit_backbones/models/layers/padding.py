"""The one padding rule: zero-pad the bottom/right of a feature map up to a multiple, crop back after."""
from typing import Tuple

import torch
import torch.nn.functional as F

from ...utils.tracing import is_tracing


def round_up(size: int, multiple: int) -> int:
    """``size`` rounded up to a multiple of ``multiple``. Not ``-(-size // multiple)``: exporters turn floor
    division of a negative size into truncation, and on symbolic sizes the result is visibly ``k * multiple``
    (window reshapes need no divisibility guards)."""
    return (size + multiple - 1) // multiple * multiple


def pad_amount(size: int, multiple: int) -> int:
    """How many rows/columns to add so ``size`` becomes a multiple of ``multiple``."""
    return round_up(size, multiple) - size


def pad_nhwc(x_nhwc: torch.Tensor, multiple_h: int, multiple_w: int) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad ``(B, H, W, C)`` at the bottom/right; returns the padded map and ``(pad_b, pad_r)``."""
    pad_b, pad_r = pad_amount(x_nhwc.shape[1], multiple_h), pad_amount(x_nhwc.shape[2], multiple_w)
    if is_tracing() or pad_b or pad_r:  # traced: always pad (maybe by 0), so the graph fits any size
        x_nhwc = F.pad(x_nhwc, (0, 0, 0, pad_r, 0, pad_b))
    return x_nhwc, pad_b, pad_r


def pad_nchw(x_nchw: torch.Tensor, multiple_h: int, multiple_w: int) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad ``(B, C, H, W)`` at the bottom/right; returns the padded map and ``(pad_b, pad_r)``."""
    pad_b, pad_r = pad_amount(x_nchw.shape[2], multiple_h), pad_amount(x_nchw.shape[3], multiple_w)
    if is_tracing() or pad_b or pad_r:
        x_nchw = F.pad(x_nchw, (0, pad_r, 0, pad_b))
    return x_nchw, pad_b, pad_r
