"""Export-friendly forms of size-dependent pieces of TransNeXt's pooled path (ONNX, dynamic H and W), used while
an exporter records a graph (``is_exporting()``). Each equals the eager operator up to float summation order and is
built from ``arange``, integer arithmetic, comparisons and matrix products on the (possibly symbolic) sizes, so
``torch.export`` records it for every size and ONNX has an op for every step.
"""
import contextlib
from typing import Tuple

import torch

from mmvit_backbones import compat
from mmvit_backbones.utils.tracing import is_exporting


def adaptive_pool_matrix(in_len: int, out_len: int, dtype: torch.dtype = torch.float32,
                         device=None) -> torch.Tensor:
    """``(out_len, in_len)`` matrix of 1-d adaptive average pooling (PyTorch's bins)."""
    a = torch.arange(out_len, device=device)
    start, end = (a * in_len) // out_len, ((a + 1) * in_len + out_len - 1) // out_len
    i = torch.arange(in_len, device=device)
    inside = (i[None, :] >= start[:, None]) & (i[None, :] < end[:, None])
    return inside.to(dtype) / (end - start).to(dtype)[:, None]


def adaptive_avg_pool2d_matmul(x_nchw: torch.Tensor, output_size: Tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x_nchw, output_size)`` as ``P_h @ x @ P_w^T`` (ONNX pools to no dynamic size)."""
    h, w = x_nchw.shape[-2:]
    p_h = adaptive_pool_matrix(h, output_size[0], x_nchw.dtype, x_nchw.device)  # (oh, H)
    p_w = adaptive_pool_matrix(w, output_size[1], x_nchw.dtype, x_nchw.device)  # (ow, W)
    return p_h @ x_nchw @ p_w.t()


def linear_taps_closed_form(in_len: int, out_len: int, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``log_cpb.linear_taps`` as PyTorch's ``upsample_linear1d`` computes them (the tap order may differ):
    ``src = max((dst + 0.5) * in / out - 0.5, 0)``, taps ``floor(src)`` and the next, weights ``1 - frac``, ``frac``.
    """
    src = ((torch.arange(out_len, device=device, dtype=torch.float32) + 0.5) * (in_len / out_len) - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(in_len - 1)
    i1 = torch.minimum(i0 + 1, torch.full_like(i0, in_len - 1))
    frac = (src - i0.float()).clamp(0, 1)
    return torch.stack([i0, i1], -1), torch.stack([1 - frac, frac], -1)


def weighted_gather(index: torch.Tensor, table: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.embedding_bag(index, table, per_sample_weights=weight, mode='sum')`` for ``(N, T)`` index/weight."""
    rows = table.index_select(0, index.reshape(-1).long()).view(*index.shape, table.shape[-1])
    return (rows * weight.to(table.dtype)[..., None]).sum(-2)


def float32_region(device_type: str):
    """``torch.autocast(device_type, enabled=False)``, or no context while exporting outside autocast, where
    ``torch.export`` would make it an autocast sub-graph that slows the ONNX conversion several times."""
    if is_exporting() and not compat.autocast_enabled(device_type):
        return contextlib.nullcontext()
    return compat.autocast_disabled(device_type)
