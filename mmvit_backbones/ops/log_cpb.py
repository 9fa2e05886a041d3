"""Log-spaced continuous position bias (TransNeXt, Sec. 3.2; Swin-V2 Sec. 3.3) for dense inputs.

The bias between a query at ``(i, j)`` and a pooled key ``(a, b)`` is an MLP of the log-spaced offset
``(dh, dw)``; ``dh`` depends only on ``(i, a)``, ``dw`` only on ``(j, b)``. The authors get it at an input size by
``'interpolate'`` (their default: the MLP on the offsets of a fixed square ``img_size``, the *bias* then resized
bilinearly over the key grid and the query grid) or ``'extrapolate'`` (the MLP on the current sizes' offsets).
Both are three steps here, never building the ``(heads, queries, keys)`` coordinate table:

1. the MLP runs on the outer product of the *unique* per-axis offsets (``U_h x U_w`` points);
2. bilinear resizing is separable and pairs one query axis with one key axis, so each output ``(i, a)`` is a
   weighted sum of at most four unique-offset rows (two taps over ``i`` times two over ``a``); likewise ``(j, b)``;
3. two ``embedding_bag`` calls apply those sums along ``w``, then ``h``.

The tap weights come from ``F.interpolate`` (applied to an identity): the authors' bias up to summation order.
"""
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

from mmvit_backbones.utils.tracing import host_constants, is_capturing, is_exporting
from mmvit_backbones.ops.export_helpers import float32_region, linear_taps_closed_form, weighted_gather

Size = Tuple[int, int]


@dataclass(frozen=True)
class AxisTaps:
    """One axis of the bias: output ``(q, k)`` reads ``sum_t weight[q, k, t] * table[index[q, k, t]]``."""
    values: torch.Tensor  # (U,) float32, log-spaced unique offsets
    index: torch.Tensor  # (Q, K, T) int64 into values (int32 once on a device, see bias_geometry)
    weight: torch.Tensor  # (Q, K, T) float32
    offsets: Optional[torch.Tensor] = None  # (Q*K,) bag starts of the flat index (on a device only)


def pooled_key_coords(query_len: int, key_len: int) -> torch.Tensor:
    """Centre of each adaptive-average-pooling bin over ``arange(query_len)`` (pooled key position)."""
    return F.adaptive_avg_pool1d(torch.arange(query_len, dtype=torch.float32)[None], key_len)[0]


def linear_taps(in_len: int, out_len: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(index, weight)``, each ``(out_len, 2)``: PyTorch's own taps of ``F.interpolate(mode='linear')``."""
    eye = torch.eye(in_len, dtype=torch.float32)[None]  # (1, C=in, L=in): column c is input sample c
    matrix = F.interpolate(eye, size=out_len, mode='linear', align_corners=False)[0]  # (in, out)
    weight, index = matrix.t().topk(min(2, in_len), dim=-1)  # (out, <=2)
    if in_len == 1:
        index, weight = index.expand(out_len, 2), torch.cat([weight, weight.new_zeros(out_len, 1)], -1)
    return index.contiguous(), weight.contiguous()


def _log_spaced(offsets: torch.Tensor) -> torch.Tensor:
    return torch.sign(offsets) * torch.log2(offsets.abs() + 1.0) / math.log2(8)


def _resized_taps(values: torch.Tensor, inverse: torch.Tensor, q_taps, k_taps) -> AxisTaps:
    """Taps of ``inverse`` ``(tq, tk)`` resized by linear taps: ``(q, k)`` reads ``inverse[qi, ki]`` by ``qw * kw``."""
    (qi, qw), (ki, kw) = q_taps, k_taps  # (Q, 2), (K, 2)
    index = inverse[qi[:, None, :, None], ki[None, :, None, :]]  # (Q, K, 2, 2)
    weight = qw[:, None, :, None] * kw[None, :, None, :]
    return AxisTaps(values, index.flatten(2).contiguous(), weight.flatten(2).contiguous())


@lru_cache(maxsize=256)
def axis_taps(query_len: int, key_len: int, pretrain_len: int,
              table_query_len: Optional[int] = None, table_key_len: Optional[int] = None) -> AxisTaps:
    """Taps of one axis: offsets at the current sizes (extrapolation) or at ``table_*``, resized (interpolation)."""
    tq, tk = table_query_len or query_len, table_key_len or key_len
    q = torch.arange(tq, dtype=torch.float32)
    k = pooled_key_coords(tq, tk)
    offsets = (q[:, None] - k[None, :]) / (pretrain_len - 1) * 8  # (tq, tk), as in the paper's Eq. (8)
    values, inverse = torch.unique(offsets, return_inverse=True)  # inverse: (tq, tk)
    if table_query_len is None:
        return AxisTaps(_log_spaced(values), inverse[..., None], torch.ones(tq, tk, 1))
    return _resized_taps(_log_spaced(values), inverse, linear_taps(tq, query_len), linear_taps(tk, key_len))


def traced_axis_taps(query_len, key_len, pretrain_len: int, table_query_len: int, table_key_len: int,
                     device=None) -> AxisTaps:
    """:func:`axis_taps` in interpolation mode for export (graph-valued ``query_len``/``key_len``): the unique
    offsets of the table sizes enter as constants computed in NumPy (same float32 arithmetic, no ``torch.unique``)."""
    import numpy as np
    tq, tk = table_query_len, table_key_len
    a = np.arange(tk)
    start, end = a * tq // tk, ((a + 1) * tq + tk - 1) // tk
    k = ((start + end - 1) / 2).astype(np.float32)  # bin means of arange(tq): half-integers, exact
    q = np.arange(tq, dtype=np.float32)
    offsets = (q[:, None] - k[None, :]) / np.float32(pretrain_len - 1) * np.float32(8)
    values, inverse = np.unique(offsets.reshape(-1), return_inverse=True)
    values = _log_spaced(torch.tensor(values, dtype=torch.float32, device=device))
    inverse = torch.tensor(inverse.reshape(tq, tk), dtype=torch.int64, device=device)
    return _resized_taps(values, inverse, linear_taps_closed_form(tq, query_len, device),
                         linear_taps_closed_form(tk, key_len, device))


def drop_zero_taps(taps: AxisTaps) -> AxisTaps:
    """``taps`` less tap positions of zero weight everywhere (an axis at the table's size keeps 1 of 4); exact."""
    keep = (taps.weight != 0).flatten(0, 1).any(dim=0)  # (T,)
    if bool(keep.all()):
        return taps
    return AxisTaps(taps.values, taps.index[..., keep].contiguous(), taps.weight[..., keep].contiguous())


@dataclass
class BiasGeometry:
    """Size-only data of one stage's bias (on a device)."""
    query_size: Size
    key_size: Size
    taps_h: AxisTaps
    taps_w: AxisTaps
    table: torch.Tensor  # (U_w * U_h, 2) MLP inputs (dh, dw), rows ordered (u_w, u_h)
    table_key: tuple  # equal keys mean equal tables (interpolation mode: one table for all inputs)


def bias_geometry(query_size: Size, key_size: Size, pretrain_size: int, table_size: Optional[int],
                  sr_ratio: int, device: torch.device) -> BiasGeometry:
    """Geometry of the bias of queries on ``query_size`` and pooled keys on ``key_size``; ``table_size``: the stage's
    query side at ``img_size`` (interpolation) or ``None`` (extrapolation); ``pretrain_size``: at pre-training."""
    exporting = is_exporting()
    if exporting and table_size is None:
        raise NotImplementedError("TransNeXt with pos_bias_mode='extrapolate' does not export to ONNX (its bias "
                                  "table has one row per unique offset of the input size, a data-dependent "
                                  "count); expected pos_bias_mode='interpolate'")
    table_key_len = None if table_size is None else table_size // sr_ratio
    taps = []
    for q_len, k_len in zip(query_size, key_size):
        if exporting:
            taps.append(traced_axis_taps(q_len, k_len, pretrain_size, table_size, table_key_len, device))
            continue
        with host_constants():  # size-only offsets, built on the host once per size (torch.unique), then moved
            t = drop_zero_taps(axis_taps(q_len, k_len, pretrain_size, table_size, table_key_len))
        # int32 indices take embedding_bag's fbgemm path on CPU (about 3.5x faster than int64)
        q, k, n_taps = t.index.shape
        offsets = torch.arange(0, q * k * n_taps, n_taps, dtype=torch.int32, device=device)  # cached with the rest
        taps.append(AxisTaps(t.values.to(device), t.index.to(device, torch.int32), t.weight.to(device), offsets))
    table = torch.stack(torch.meshgrid(taps[1].values, taps[0].values, indexing='ij')[::-1], -1).reshape(-1, 2)
    table_key = (pretrain_size, sr_ratio) + ((table_size, ) if table_size else (tuple(query_size), tuple(key_size)))
    return BiasGeometry(tuple(query_size), tuple(key_size), taps[0], taps[1], table, table_key + (str(device), ))


def _gather_taps(index: torch.Tensor, weight: torch.Tensor, table: torch.Tensor, offsets) -> torch.Tensor:
    """``(Q*K, columns)``: ``sum_t weight[q, k, t] * table[index[q, k, t]]`` (``offsets``: bag starts, a prefix)."""
    if is_exporting():  # no bag offsets of one size
        return weighted_gather(index.flatten(0, 1), table, weight.flatten(0, 1))
    return F.embedding_bag(index.reshape(-1), table, offsets[:index.shape[0] * index.shape[1]],
                           per_sample_weights=weight.reshape(-1).to(table.dtype), mode='sum')


class PoolBias:
    """The bias of one layer at one input size, lazily: ``bias(r0, r1)``, ``(heads, R, W, kh, kw)``, of query rows
    ``r0:r1`` is ``sum_t weight_h[i, a, t] * table_h[index_h[i, a, t]]``, ``table_h`` ``(U_h, heads * W * kw)``
    being the MLP output resized along ``w``; the kernels take ``table_h`` as their differentiable input."""

    def __init__(self, mlp_out: torch.Tensor, geometry: BiasGeometry) -> None:
        g = geometry
        uw, uh, heads = g.taps_w.values.numel(), g.taps_h.values.numel(), mlp_out.shape[-1]
        (_, w), (_, kw) = g.query_size, g.key_size
        # step 2+3 along w: (W*kw, heads*U_h) = taps over the unique w offsets
        table_w = mlp_out.view(uw, uh, heads).transpose(1, 2).reshape(uw, heads * uh)
        along_w = _gather_taps(g.taps_w.index, g.taps_w.weight, table_w, g.taps_w.offsets)
        table_h = along_w.view(w * kw, heads, uh).permute(2, 1, 0).reshape(uh, heads * w * kw)  # rows: u_h
        self._set(heads, g.query_size, g.key_size, table_h, g.taps_h.index, g.taps_h.weight.to(table_w.dtype),
                  g.taps_h.offsets)

    def _set(self, heads, query_size, key_size, table_h, index_h, weight_h, offsets_h) -> None:
        self.heads, self.query_size, self.key_size = heads, query_size, key_size
        self.w, (self.kh, self.kw) = query_size[1], key_size
        self.table_h, self.index_h, self.weight_h = table_h, index_h, weight_h  # (U_h, heads*W*kw), (H, kh, T) x2
        self.offsets_h = offsets_h  # (H*kh,): a prefix serves any block of query rows

    @classmethod
    def from_dense(cls, bias: torch.Tensor) -> 'PoolBias':
        """A whole ``(heads, H, W, kh, kw)`` bias as a :class:`PoolBias` (one tap per output), for tests/analysis."""
        heads, h, w, kh, kw = bias.shape
        self, offsets = cls.__new__(cls), torch.arange(h * kh, dtype=torch.int32, device=bias.device)
        self._set(heads, (h, w), (kh, kw), bias.permute(1, 3, 0, 2, 4).reshape(h * kh, heads * w * kw),
                  offsets.view(h, kh, 1), torch.ones(h, kh, 1, dtype=bias.dtype, device=bias.device), offsets)
        return self

    def __call__(self, r0: int, r1: int) -> torch.Tensor:
        return self.rows(self.table_h, r0, r1)

    def rows(self, table_h: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
        """``self(r0, r1)`` read from ``table_h`` (a tensor of ``self.table_h``'s shape, e.g. a leaf in a backward)."""
        rows = _gather_taps(self.index_h[r0:r1], self.weight_h[r0:r1], table_h, self.offsets_h)
        return rows.view(r1 - r0, self.kh, self.heads, self.w, self.kw).permute(2, 0, 3, 1, 4)

    def full(self) -> torch.Tensor:
        """The whole bias, ``(heads, H*W, kh*kw)``."""
        return self(0, self.query_size[0]).flatten(1, 2).flatten(2)


MLP_ROWS_PER_CHUNK = 8192  # inference evaluates the MLP in chunks: its hidden layer is 512 wide


def _mlp(table: torch.Tensor, fc1, fc2, chunk: int = MLP_ROWS_PER_CHUNK) -> torch.Tensor:
    """``fc2(relu(fc1(table)))`` over chunks of ``chunk`` rows; ``fc1``/``fc2`` are the modules (their hooks run)
    or, inside :class:`ChunkedCpbMLP`, the same linear maps on saved tensors."""
    return torch.cat([fc2(F.relu(fc1(rows))) for rows in table.split(chunk)])


class ChunkedCpbMLP(torch.autograd.Function):
    """:func:`_mlp` for training: the backward recomputes each chunk's hidden layer, so neither pass holds it for
    the whole table (at ``img_size=800`` stage 1's table has about 150k rows: 300 MB per hidden-layer tensor)."""

    @staticmethod
    def forward(ctx, table, w1, b1, w2, b2):
        ctx.save_for_backward(table, w1, b1, w2, b2)
        return _mlp(table, partial(F.linear, weight=w1, bias=b1), partial(F.linear, weight=w2, bias=b2))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        table, w1, b1, w2, b2 = ctx.saved_tensors
        dw1, db1, dw2, db2 = (torch.zeros_like(t) for t in (w1, b1, w2, b2))
        for rows, grad in zip(table.split(MLP_ROWS_PER_CHUNK), grad_out.split(MLP_ROWS_PER_CHUNK)):
            hidden = torch.addmm(b1, rows, w1.t()).clamp_min_(0)  # (rows, 512), after the ReLU
            dw2.addmm_(grad.t(), hidden)
            db2.add_(grad.sum(0))
            d_hidden = (grad @ w2).mul_(hidden > 0)
            dw1.addmm_(d_hidden.t(), rows)
            db1.add_(d_hidden.sum(0))
        return None, dw1, db1, dw2, db2


def evaluate_cpb(fc1: torch.nn.Linear, fc2: torch.nn.Linear, geometry: BiasGeometry) -> torch.Tensor:
    """The bias MLP (the authors' ``cpb_fc1``/``cpb_fc2``) on ``geometry``'s unique offsets in float32 (also
    under autocast), in row chunks: ``(U_w * U_h, heads)``."""
    with float32_region(fc1.weight.device.type):
        table = geometry.table.to(fc1.weight.dtype)
        if not (torch.is_grad_enabled() and fc1.weight.requires_grad):
            mlp_out = _mlp(table, fc1, fc2)
        elif is_capturing():  # one chunk, recomputed in the backward pass
            mlp_out = checkpoint(_mlp, table, fc1, fc2, len(table), use_reentrant=False)
        else:
            mlp_out = ChunkedCpbMLP.apply(table, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
    return mlp_out.float()
