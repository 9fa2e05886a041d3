"""Aggregated attention of TransNeXt (Shi, CVPR 2024, Sec. 3.2, Eq. 6-9), without a CUDA build.

Each query attends, in one softmax, to its 3x3 neighbourhood (fine keys, zero-padded and masked at
the borders) and to a pooled map (coarse keys). The local attention weights are then shifted by a
query-dependent "learnable tokens" term *after* the softmax. With ``q_s`` the scaled queries:

    logits = [q_s . k_n + b_n  (n in 3x3) | q_s . k_p + B(q, p)  (pooled p)]
    a      = softmax(logits)
    out    = sum_n (a_n + q_norm . t_n + c_n) v_n + sum_p a_p v_p

Three implementations sit behind :func:`aggregated_attention` (``impl='auto'`` picks ``'triton'`` on CUDA
where ``triton`` is usable, ``'fast'`` otherwise; :func:`resolve_impl`):

* ``'reference'``: a direct transcription with ``F.unfold`` (nine copies of the keys and values),
  kept for readability and as the test oracle;
* ``'fast'``: the 3x3 logits and the local output are nine shifted views of one zero-padded key
  (value) map, so no 9x copy exists; the pooled logits are computed against keys padded with nine
  zero rows so that local and pooled logits share one tensor and one softmax, processed in blocks of
  query rows (or tiles of one row), so the ``(heads, queries, pooled keys)`` logits and the position
  bias are never held for the whole image. Under autograd :class:`BlockedAggregatedAttention` runs the
  same blocks and its backward recomputes each block's pooled logits from the saved log-sum-exp, so
  nothing of size ``heads x queries x pooled`` is kept for the backward (graph capture and export use
  the single-graph form :func:`_fast_train`);
* ``'triton'``: one fused kernel forward and one backward (``ops/triton_aggregated_attention.py``,
  :class:`TritonAggregatedAttention`); on CPU only in Triton's interpreter (tests).

All compute in float32 (cosine logits, softmax) whatever the input dtype, and return the dtype of the
values (what the output projection expects; the scaled queries may be float32 through the length scale).
"""
import functools
import logging
import os
from typing import Callable, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch.autograd.function import once_differentiable

from mmvit_backbones.utils.fast_paths import use_reference
from mmvit_backbones.utils.tracing import is_capturing, is_exporting
from mmvit_backbones.ops.export_helpers import float32_region
from mmvit_backbones.ops.log_cpb import PoolBias

Size = Tuple[int, int]
# bias(r0, r1) -> (heads, r1 - r0, W, pool_h, pool_w): the pooled-path bias of query rows r0:r1
PoolBiasFn = Callable[[int, int], torch.Tensor]

LOCAL = 9  # 3x3 neighbourhood, row-major over the kernel (F.unfold's order)
OFFSETS = [(dy, dx) for dy in range(3) for dx in range(3)]
# inference processes queries in blocks of at most this many logits (B * heads * queries * (9 + pool)):
# whole query rows, or tiles of one row (4 MB of float32 logits: in cache, and large enough for two threads)
ROW_BLOCK_ELEMENTS = 1 << 20
ATTN_IMPLS = ('auto', 'fast', 'reference', 'triton')


def local_padding_mask(size: Size, device=None) -> torch.Tensor:
    """``(H*W, 9)`` bool, True where the 3x3 neighbour lies outside the map."""
    h, w = size
    rows = torch.arange(h, device=device)[:, None] + torch.arange(-1, 2, device=device)  # (H, 3)
    cols = torch.arange(w, device=device)[:, None] + torch.arange(-1, 2, device=device)  # (W, 3)
    outside_r = (rows < 0) | (rows >= h)
    outside_c = (cols < 0) | (cols >= w)
    mask = outside_r[:, None, :, None] | outside_c[None, :, None, :]  # (H, W, 3, 3)
    return mask.reshape(h * w, LOCAL)


def aggregated_attention(q_scaled: torch.Tensor, q_norm: torch.Tensor, k_local: torch.Tensor,
                         v_local: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, *,
                         size: Size, pool_size: Size, local_bias: torch.Tensor, padding_mask: torch.Tensor,
                         pool_bias: PoolBiasFn, learnable_tokens: torch.Tensor, learnable_bias: torch.Tensor,
                         impl: str = 'auto') -> torch.Tensor:
    """Aggregated attention of queries on an ``H x W`` map (Eq. 6-9 of the paper).

    Args:
        q_scaled: ``(B, h, N, d)`` normalised queries plus query embedding, times temperature and
            length scale (N = H*W, row-major).
        q_norm: ``(B, h, N, d)`` normalised queries (for the learnable-token term).
        k_local, v_local: ``(B, h, N, d)`` keys (L2-normalised) and values of the fine path.
        k_pool, v_pool: ``(B, h, P, d)`` keys (L2-normalised) and values of the pooled map
            (P = pool_h * pool_w).
        size: ``(H, W)``; pool_size: ``(pool_h, pool_w)``.
        local_bias: ``(h, 9)`` learnable bias of the 3x3 logits.
        padding_mask: ``(N, 9)`` bool, True where a neighbour is outside the map.
        pool_bias: the position bias of the pooled logits, a :class:`~mmvit_backbones.ops.log_cpb.PoolBias`
            (``bias(r0, r1) -> (h, r1 - r0, W, pool_h, pool_w)``; the reference path and inference also take
            any such callable).
        learnable_tokens: ``(h, d, 9)``; learnable_bias: ``(h, 1, 9)``.
        impl: one of :data:`ATTN_IMPLS`: ``'auto'`` (the Triton kernel on CUDA where ``triton`` is usable,
            else ``'fast'``), ``'fast'`` (PyTorch, blocked), ``'reference'`` or ``'triton'``.

    Returns:
        ``(B, h, N, d)`` in the dtype of ``v_local``.
    """
    if impl not in ATTN_IMPLS:
        raise ValueError(f'aggregated_attention: impl must be one of {ATTN_IMPLS}, got {impl!r}')
    impl = resolve_impl(impl, q_scaled.device)
    dtype = v_local.dtype  # q_scaled is float32 in a bf16/fp16 model (times the float32 length scale)
    with float32_region(q_scaled.device.type):
        if impl == 'triton':  # reads any float dtype itself, computes in float32
            return _triton(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, learnable_tokens,
                           learnable_bias, size=size, pool_size=pool_size, pool_bias=pool_bias).to(dtype)
        args = [t.float() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias,
                                    learnable_tokens, learnable_bias)]
        kwargs = dict(size=size, pool_size=pool_size, padding_mask=padding_mask, pool_bias=pool_bias)
        if impl == 'reference':
            out = _reference(*args, **kwargs)
        elif is_exporting():  # one graph for every size (the row-block loops would fix the sizes)
            out = _fast_train(*args, **kwargs)
        elif not torch.is_grad_enabled():
            out = _fast_infer(*args, **kwargs)
        elif is_capturing() or not isinstance(pool_bias, PoolBias):  # torch.compile training: plain operators
            out = _fast_train(*args, **kwargs)
        else:  # training: the blocked loop, whose backward recomputes the logits
            out = BlockedAggregatedAttention.apply(*args, pool_bias.table_h, pool_bias, size, pool_size,
                                                   padding_mask)
    return out.to(dtype)


@functools.lru_cache(maxsize=None)
def triton_status() -> Tuple[bool, str]:
    """``(True, 'triton X.Y.Z')`` where the Triton kernel can be compiled, else ``(False, why not)``.

    Triton 2.1 (bundled with torch 2.1) and later; ``triton`` is imported here, never at package import.
    """
    try:
        import triton
        import triton.language  # noqa: F401
    except ImportError as err:
        return False, f'triton is not importable ({err})'
    version = tuple(int(p) for p in triton.__version__.split('.')[:2] if p.isdigit())
    if version < (2, 1):
        return False, f'triton {triton.__version__} is older than 2.1'
    return True, f'triton {triton.__version__}'


def triton_interpreted() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``, Triton >= 3)."""
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


_LOGGED = set()


def resolve_impl(impl: str, device: torch.device) -> str:
    """The implementation ``impl`` stands for on ``device``: ``'auto'`` is ``'triton'`` on CUDA with a usable
    ``triton`` outside graph capture, else ``'fast'``. The first choice per device type is logged (INFO)."""
    if impl in ('auto', 'fast') and use_reference():  # the package's one reference switch (utils.fast_paths)
        return 'reference'
    if impl != 'auto':
        return impl
    usable, why = triton_status()
    chosen = 'triton' if device.type == 'cuda' and usable and not is_capturing() else 'fast'
    if (device.type, chosen) not in _LOGGED and not is_capturing():
        _LOGGED.add((device.type, chosen))
        reason = why if device.type == 'cuda' else f'{device.type} device'
        path = 'Triton kernel' if chosen == 'triton' else 'PyTorch blocked path'
        print_log(f"TransNeXt aggregated attention on {device.type}: {path} (attn_impl='{chosen}'; {reason})",
                  logger='current', level=logging.INFO)
    return chosen


def _triton(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *, size,
            pool_size, pool_bias):
    usable, why = triton_status()
    if not usable:
        raise RuntimeError(f"aggregated_attention: impl='triton' needs triton >= 2.1: {why}")
    if q_scaled.device.type != 'cuda' and not triton_interpreted():
        raise RuntimeError(f"aggregated_attention: impl='triton' runs on CUDA tensors (or in Triton's CPU "
                           f"interpreter, TRITON_INTERPRET=1); got {q_scaled.device.type} tensors")
    if not isinstance(pool_bias, PoolBias):
        raise TypeError(f"aggregated_attention: impl='triton' needs pool_bias as a PoolBias, got {type(pool_bias)}")
    return TritonAggregatedAttention.apply(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
                                           token_bias, pool_bias.table_h, pool_bias, size, pool_size)


def _reference(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *,
               size, pool_size, padding_mask, pool_bias):
    b, h, n, d = q_scaled.shape
    hh, ww = size

    def unfold(t):  # (B, h, N, d) -> (B, h, N, d, 9): the 3x3 neighbours of every position
        t = t.permute(0, 1, 3, 2).reshape(b, h * d, hh, ww)
        return F.unfold(t, 3, padding=1).view(b, h, d, LOCAL, n).permute(0, 1, 4, 2, 3)

    k_nb, v_nb = unfold(k_local), unfold(v_local)
    attn_local = (q_scaled.unsqueeze(-2) @ k_nb).squeeze(-2) + local_bias.unsqueeze(1)  # (B, h, N, 9)
    attn_local = attn_local.masked_fill(padding_mask, float('-inf'))
    attn_pool = q_scaled @ k_pool.transpose(-2, -1) + pool_bias(0, hh).reshape(h, n, -1)
    attn = torch.cat([attn_local, attn_pool], dim=-1).softmax(dim=-1)
    attn_local, attn_pool = attn.split([LOCAL, attn_pool.shape[-1]], dim=-1)
    weights = q_norm @ tokens + token_bias + attn_local  # learnable-token term added after the softmax
    x_local = (weights.unsqueeze(-2) @ v_nb.transpose(-2, -1)).squeeze(-2)
    return x_local + attn_pool @ v_pool


def _local_logits(q_scaled, k_local, local_bias, padding_mask, size):
    """``(B, h, H, W, 9)`` contiguous 3x3 logits from nine shifted views of the zero-padded keys."""
    b, h, _, d = q_scaled.shape
    hh, ww = size
    q5 = q_scaled.view(b, h, hh, ww, d)
    k_pad = F.pad(k_local.view(b, h, hh, ww, d), (0, 0, 1, 1, 1, 1))
    if torch.is_grad_enabled() or is_exporting():
        logits = torch.stack([(q5 * k_pad[:, :, dy:dy + hh, dx:dx + ww]).sum(-1) for dy, dx in OFFSETS], dim=-1)
    else:  # inference: one product buffer reused for the nine offsets (no fresh allocation per offset)
        product = torch.empty_like(q5)
        by_offset = q5.new_empty(LOCAL, b, h, hh, ww)
        for i, (dy, dx) in enumerate(OFFSETS):
            torch.mul(q5, k_pad[:, :, dy:dy + hh, dx:dx + ww], out=product)
            torch.sum(product, dim=-1, out=by_offset[i])
        logits = by_offset.permute(1, 2, 3, 4, 0)
    logits = logits + local_bias.view(h, 1, 1, LOCAL)
    return logits.masked_fill(padding_mask.view(hh, ww, LOCAL), float('-inf')).contiguous()


def _local_values(weights, v_local, size, out):
    """``out + sum_n weights_n * v_n`` over the nine shifted views of the zero-padded values (adds into
    ``out``, which must be a fresh tensor of the caller's)."""
    b, h, _, d = v_local.shape
    hh, ww = size
    v_pad = F.pad(v_local.view(b, h, hh, ww, d), (0, 0, 1, 1, 1, 1))
    by_offset = weights.view(b, h, hh, ww, LOCAL).permute(4, 0, 1, 2, 3).unsqueeze(-1).contiguous()  # (9, ..., 1)
    out = out.view(b, h, hh, ww, d)
    if is_exporting():  # export: out of place (an in-place add through a view is slow to functionalise)
        for i, (dy, dx) in enumerate(OFFSETS):
            out = out + by_offset[i] * v_pad[:, :, dy:dy + hh, dx:dx + ww]
        return out.reshape(b, h, hh * ww, d)
    for i, (dy, dx) in enumerate(OFFSETS):
        out.addcmul_(by_offset[i], v_pad[:, :, dy:dy + hh, dx:dx + ww])
    return out.view(b, h, hh * ww, d)


def _fast_train(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *,
                size, pool_size, padding_mask, pool_bias):
    b, h, n, d = q_scaled.shape
    hh, ww = size
    ph, pw = pool_size
    local = _local_logits(q_scaled, k_local, local_bias, padding_mask, size)
    if is_exporting():  # export: no in-place add through a view whose strides are symbolic
        pooled = q_scaled @ k_pool.transpose(-2, -1) + pool_bias(0, hh).reshape(h, n, ph * pw)
        logits = torch.cat([local.view(b, h, n, LOCAL), pooled], dim=-1)
    else:  # nine zero keys/values in front: columns 0..8 of the logits hold the local logits, one softmax
        logits = q_scaled @ F.pad(k_pool, (0, 0, LOCAL, 0)).transpose(-2, -1)  # (B, h, N, 9 + P)
        logits[..., :LOCAL] += local.view(b, h, n, LOCAL)
        logits[..., LOCAL:].view(b, h, hh, ww, ph, pw).add_(pool_bias(0, hh))
    attn = logits.softmax(dim=-1)
    x = attn @ F.pad(v_pool, (0, 0, LOCAL, 0))
    weights = q_norm @ tokens + token_bias + attn[..., :LOCAL]
    return _local_values(weights, v_local, size, x)


@torch.no_grad()
def _fast_infer(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *,
                size, pool_size, padding_mask, pool_bias):
    b, h, n, _ = q_scaled.shape
    local = _local_logits(q_scaled, k_local, local_bias, padding_mask, size)  # (B, h, H, W, 9)
    x = _pooled_blocks(q_scaled, k_pool, v_pool, local, pool_bias, size, pool_size)
    weights = (q_norm @ tokens).add_(token_bias).add_(local.view(b, h, n, LOCAL))  # local: softmax weights
    return _local_values(weights, v_local, size, x)


def _row_blocks(b, h, size, cols):
    """``(r0, r1, c0, c1)`` blocks of queries: whole rows, or tiles of one row, of at most
    :data:`ROW_BLOCK_ELEMENTS` logits (``B * h * queries * cols``); and the block's largest query count."""
    hh, ww = size
    per_block = max(1, ROW_BLOCK_ELEMENTS // max(1, b * h * cols))  # queries per block (B may be 0)
    if per_block >= ww:  # whole rows
        rows, tile = min(hh, per_block // ww), ww
    else:  # one row in tiles of equal width
        rows, tile = 1, -(-ww // -(-ww // per_block))
    blocks = [(r0, min(hh, r0 + rows), c0, min(ww, c0 + tile))
              for r0 in range(0, hh, rows) for c0 in range(0, ww, tile)]
    return blocks, rows * tile


def _pooled_blocks(q_scaled, k_pool, v_pool, local, pool_bias, size, pool_size, lse=None):
    """Blocks of query rows; per block one ``(B*h, R*W, 9 + P)`` logits buffer, allocated once: one GEMM
    against the pooled keys with nine zero keys in front writes it, the 3x3 logits fill columns 0..8 and the
    position bias is added to the rest, one softmax runs in place, one GEMM with the values (nine zero
    values in front) gives the pooled output. Blocks are whole query rows, or tiles of one row.

    ``local`` ``(B, h, H, W, 9)`` holds the 3x3 logits and is overwritten with their softmax weights;
    returns the pooled output ``(B, h, N, d)``. ``lse`` ``(B*h, H, W)``, if given, receives each query's
    log-sum-exp (what the backward of :class:`BlockedAggregatedAttention` recomputes the weights from).
    """
    b, h, n, d = q_scaled.shape
    hh, ww = size
    ph, pw = pool_size
    cols = LOCAL + ph * pw
    q3 = q_scaled.view(b * h, hh, ww, d)
    k_t = F.pad(k_pool, (0, 0, LOCAL, 0)).transpose(-2, -1).reshape(b * h, d, cols)  # zero keys 0..8
    v_pad = F.pad(v_pool, (0, 0, LOCAL, 0)).reshape(b * h, cols, d)  # zero values 0..8
    x = q_scaled.new_empty(b * h, hh, ww, d)
    blocks, largest = _row_blocks(b, h, size, cols)
    capturing = is_capturing()
    logits_buf = None if capturing else q_scaled.new_empty(b * h, largest, cols)
    local3 = local.view(b * h, hh, ww, LOCAL)
    bias, bias_rows = None, None
    for r0, r1, c0, c1 in blocks:
        if bias_rows != (r0, r1):
            bias, bias_rows = pool_bias(r0, r1), (r0, r1)  # (h, R, W, ph, pw)
        m = (r1 - r0) * (c1 - c0)
        q_block = q3[:, r0:r1, c0:c1].reshape(b * h, m, d)
        if capturing:  # torch.compile: out-of-place (dynamo refuses a non-contiguous out=)
            logits = torch.bmm(q_block, k_t).view(b, h, r1 - r0, c1 - c0, cols)
            pooled = logits[..., LOCAL:].view(b, h, r1 - r0, c1 - c0, ph, pw) + bias[:, :, c0:c1]
            logits = torch.cat([local3[:, r0:r1, c0:c1].reshape(b * h, m, LOCAL),
                                pooled.reshape(b * h, m, cols - LOCAL)], dim=-1).softmax(-1)
            x[:, r0:r1, c0:c1] = torch.bmm(logits, v_pad).view(b * h, r1 - r0, c1 - c0, d)
        else:
            logits = logits_buf[:, :m]  # (B*h, R*T, 9 + P)
            torch.bmm(q_block, k_t, out=logits)
            by_key = logits.view(b, h, r1 - r0, c1 - c0, cols)[..., LOCAL:].view(b, h, r1 - r0, c1 - c0, ph, pw)
            by_key.add_(bias[:, :, c0:c1])
            logits[..., :LOCAL].copy_(local3[:, r0:r1, c0:c1].reshape(b * h, m, LOCAL))
            if lse is not None:
                lse[:, r0:r1, c0:c1] = torch.logsumexp(logits, -1).view(b * h, r1 - r0, c1 - c0)
            torch.softmax(logits, -1, out=logits)  # row-wise kernel: in place is exact
            torch.bmm(logits, v_pad, out=x[:, r0:r1, c0:c1].view(b * h, m, d))
        local3[:, r0:r1, c0:c1] = logits[..., :LOCAL].view(b * h, r1 - r0, c1 - c0, LOCAL)  # local weights
    return x.view(b, h, n, d)


def _neighbour_dots(a, b_local, size):
    """``(B, h, N, 9)``: ``a[n] . b[neighbour i of n]`` over the nine shifted views of the zero-padded ``b``
    (zero for neighbours outside the map)."""
    b, h, n, d = a.shape
    hh, ww = size
    a5 = a.view(b, h, hh, ww, d)
    b_pad = F.pad(b_local.view(b, h, hh, ww, d), (0, 0, 1, 1, 1, 1))
    product = torch.empty_like(a5)
    out = a.new_empty(LOCAL, b, h, hh, ww)
    for i, (dy, dx) in enumerate(OFFSETS):
        torch.mul(a5, b_pad[:, :, dy:dy + hh, dx:dx + ww], out=product)
        torch.sum(product, dim=-1, out=out[i])
    return out.permute(1, 2, 3, 4, 0).reshape(b, h, n, LOCAL)


def _scatter_to_neighbours(weights, a, size):
    """The transpose of :func:`_neighbour_dots` in its second argument: ``out[m] = sum over (n, i) with
    neighbour i of n = m of weights[n, i] * a[n]``; ``(B, h, N, 9)``, ``(B, h, N, d)`` -> ``(B, h, N, d)``."""
    b, h, n, d = a.shape
    hh, ww = size
    out_pad = a.new_zeros(b, h, hh + 2, ww + 2, d)
    a5 = a.view(b, h, hh, ww, d)
    by_offset = weights.view(b, h, hh, ww, LOCAL).permute(4, 0, 1, 2, 3).unsqueeze(-1).contiguous()
    for i, (dy, dx) in enumerate(OFFSETS):
        out_pad[:, :, dy:dy + hh, dx:dx + ww].addcmul_(by_offset[i], a5)
    return out_pad[:, :, 1:hh + 1, 1:ww + 1].reshape(b, h, n, d)


class BlockedAggregatedAttention(torch.autograd.Function):
    """The ``'fast'`` path under autograd: the forward is the blocked inference loop (plus each query's
    log-sum-exp), and the backward recomputes the pooled logits block by block instead of keeping them.

    Saved for the backward: the inputs, the ``(B, h, N, 9)`` local softmax weights and the ``(B, h, N)``
    log-sum-exp; never a ``(heads, queries, pooled keys)`` tensor. The position bias enters as the
    ``table_h`` of a :class:`~mmvit_backbones.ops.log_cpb.PoolBias`; its gradient is accumulated block by
    block through the same ``embedding_bag`` that reads it.

    With ``g`` the output gradient, ``a`` the softmax weights, ``w = a_local + q_norm . t + c``:
    ``dw_i = g . v_i``, ``da_p = g . v_p``, ``D = sum_j a_j da_j``, ``ds = a (da - D)`` (softmax),
    then the products of ``ds`` with keys/queries and of ``a``/``w`` with ``g``.
    """

    @staticmethod
    def forward(ctx, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                table_h, pool_bias, size, pool_size, padding_mask):
        b, h, n, d = q_scaled.shape
        q_scaled, q_norm, k_local, v_local, k_pool, v_pool = (
            t.contiguous() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool))
        local = _local_logits(q_scaled, k_local, local_bias, padding_mask, size)  # (B, h, H, W, 9)
        lse = q_scaled.new_empty(b * h, *size)
        x = _pooled_blocks(q_scaled, k_pool, v_pool, local, pool_bias, size, pool_size, lse=lse)
        a_local = local.view(b, h, n, LOCAL)  # now the local softmax weights
        weights = (q_norm @ tokens).add_(token_bias).add_(a_local)
        out = _local_values(weights, v_local, size, x)
        ctx.save_for_backward(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, tokens, token_bias,
                              table_h, a_local, lse)
        ctx.pool_bias, ctx.size, ctx.pool_size = pool_bias, size, pool_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, tokens, token_bias, table_h, a_local,
         lse) = ctx.saved_tensors
        size, (ph, pw), pool_bias = ctx.size, ctx.pool_size, ctx.pool_bias
        b, h, n, d = q_scaled.shape
        hh, ww = size
        p = ph * pw
        g = grad_out.contiguous()
        dw = _neighbour_dots(g, v_local, size)  # (B, h, N, 9): gradient of the local weights
        delta_local = (a_local * dw).sum(-1)  # the local part of D = sum_j a_j da_j
        ds_local = torch.empty_like(dw)
        dq = torch.empty_like(q_scaled)
        dk_pool = k_pool.new_zeros(b * h, p, d)
        dv_pool = v_pool.new_zeros(b * h, p, d)
        table_leaf = table_h.detach().requires_grad_()
        q3, g3 = q_scaled.view(b * h, hh, ww, d), g.view(b * h, hh, ww, d)
        kp = k_pool.reshape(b * h, p, d)
        k_t, v_t = kp.transpose(1, 2), v_pool.reshape(b * h, p, d).transpose(1, 2)
        a_loc3, dw3 = a_local.view(b * h, hh, ww, LOCAL), dw.view(b * h, hh, ww, LOCAL)
        dl3, lse3 = delta_local.view(b * h, hh, ww), lse
        ds3, dq3 = ds_local.view(b * h, hh, ww, LOCAL), dq.view(b * h, hh, ww, d)
        blocks, largest = _row_blocks(b, h, size, LOCAL + p)
        attn_buf = q_scaled.new_empty(b * h, largest, p)
        grad_buf = q_scaled.new_empty(b * h, largest, p)
        bias, bias_rows, bias_grad = None, None, None

        def flush_bias():  # the bias gradient of one row block, through the table's embedding_bag
            if bias_rows is not None:
                with torch.enable_grad():
                    torch.autograd.backward(pool_bias.rows(table_leaf, *bias_rows), bias_grad)

        for r0, r1, c0, c1 in blocks:
            if bias_rows != (r0, r1):
                flush_bias()
                bias, bias_rows = pool_bias(r0, r1), (r0, r1)  # (h, R, W, ph, pw)
                bias_grad = bias.new_zeros(bias.shape)
            m = (r1 - r0) * (c1 - c0)
            q_block = q3[:, r0:r1, c0:c1].reshape(b * h, m, d)
            g_block = g3[:, r0:r1, c0:c1].reshape(b * h, m, d)
            attn = attn_buf[:, :m]  # (B*h, m, P): recomputed pooled weights
            torch.bmm(q_block, k_t, out=attn)
            attn.view(b, h, r1 - r0, c1 - c0, ph, pw).add_(bias[:, :, c0:c1])
            attn.sub_(lse3[:, r0:r1, c0:c1].reshape(b * h, m, 1)).exp_()
            ds = grad_buf[:, :m]
            torch.bmm(g_block, v_t, out=ds)  # da_p = g . v_p
            delta = (attn * ds).sum(-1) + dl3[:, r0:r1, c0:c1].reshape(b * h, m)  # D
            ds.sub_(delta[..., None]).mul_(attn)  # ds_p = a_p (da_p - D)
            ds3[:, r0:r1, c0:c1] = (a_loc3[:, r0:r1, c0:c1] * (dw3[:, r0:r1, c0:c1] - delta.view(
                b * h, r1 - r0, c1 - c0, 1)))
            torch.bmm(ds, kp, out=dq3[:, r0:r1, c0:c1].view(b * h, m, d))
            dk_pool.baddbmm_(ds.transpose(1, 2), q_block)
            dv_pool.baddbmm_(attn.transpose(1, 2), g_block)
            bias_grad[:, :, c0:c1] += ds.view(b, h, r1 - r0, c1 - c0, ph, pw).sum(0)
        flush_bias()

        dq = _local_values(ds_local, k_local, size, dq)  # + the local part: sum_i ds_i k_i
        weights = (q_norm @ tokens).add_(token_bias).add_(a_local)
        dk_local = _scatter_to_neighbours(ds_local, q_scaled, size)
        dv_local = _scatter_to_neighbours(weights, g, size)
        d_local_bias = ds_local.sum((0, 2))  # (h, 9)
        dq_norm = dw @ tokens.transpose(-2, -1)
        d_tokens = (q_norm.transpose(-2, -1) @ dw).sum(0)  # (h, d, 9)
        d_token_bias = dw.sum((0, 2)).unsqueeze(1)  # (h, 1, 9)
        d_table = table_leaf.grad if table_leaf.grad is not None else torch.zeros_like(table_h)
        return (dq, dq_norm, dk_local, dv_local, dk_pool.view(k_pool.shape), dv_pool.view(v_pool.shape), d_local_bias,
                d_tokens, d_token_bias, d_table, None, None, None, None)


class TritonAggregatedAttention(torch.autograd.Function):
    """The ``'triton'`` path: one kernel forward, one backward (``ops/triton_aggregated_attention.py``);
    the 3x3 key/value gradients and those of the small parameters are finished here from the kernel's
    per-query local weights and gradients (``(B, h, N, 9)`` each)."""

    @staticmethod
    def forward(ctx, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                table_h, pool_bias, size, pool_size):
        from mmvit_backbones.ops import triton_aggregated_attention as kernel
        inputs = [t.contiguous() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
                                           token_bias, table_h)]
        out, lse = kernel.forward(*inputs, pool_bias.index_h.contiguous(), pool_bias.weight_h.contiguous(), size,
                                  pool_size, interpreted=triton_interpreted())
        ctx.save_for_backward(*inputs, out, lse)
        ctx.taps = (pool_bias.index_h.contiguous(), pool_bias.weight_h.contiguous())
        ctx.size, ctx.pool_size = size, pool_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        from mmvit_backbones.ops import triton_aggregated_attention as kernel
        *inputs, out, lse = ctx.saved_tensors
        q_scaled, q_norm, _, _, _, _, _, tokens, token_bias, _ = inputs
        size = ctx.size
        dq, dkp, dvp, dtable, a_local, dw, ds_local = kernel.backward(
            grad_out, out, lse, *inputs, *ctx.taps, size, ctx.pool_size, interpreted=triton_interpreted())
        g = grad_out.float()
        q_norm32, tokens32 = q_norm.float(), tokens.float()
        weights = (q_norm32 @ tokens32).add_(token_bias.float()).add_(a_local)
        grads = (dq, dw @ tokens32.transpose(-2, -1), _scatter_to_neighbours(ds_local, q_scaled.float(), size),
                 _scatter_to_neighbours(weights, g, size), dkp, dvp, ds_local.sum((0, 2)),
                 (q_norm32.transpose(-2, -1) @ dw).sum(0), dw.sum((0, 2)).unsqueeze(1), dtable)
        grads = [gr.to(t.dtype) if ctx.needs_input_grad[i] else None for i, (gr, t) in enumerate(zip(grads, inputs))]
        return (*grads, None, None, None)


def length_scaled_attention(q_scaled: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            bias: torch.Tensor) -> torch.Tensor:
    """Full attention of stage 4: ``softmax(q_s . k + bias) v`` with no 1/sqrt(d), in float32.

    ``q_scaled``/``k``/``v``: ``(B, h, N, d)`` (``k`` L2-normalised); ``bias``: ``(h, N, N)``.
    Returns the dtype of ``v``.
    """
    dtype = v.dtype
    with float32_region(q_scaled.device.type):
        out = F.scaled_dot_product_attention(q_scaled.float(), k.float(), v.float(),
                                             attn_mask=bias.float().unsqueeze(0), scale=1.0)
    return out.to(dtype)
