"""Aggregated attention of TransNeXt (Shi, CVPR 2024, Sec. 3.2, Eq. 6-9), without a CUDA build.

Each query attends, in one softmax, to its 3x3 neighbourhood (fine keys, zero-padded and masked at the borders)
and to a pooled map (coarse keys); the local weights are then shifted by a query-dependent "learnable tokens"
term *after* the softmax. With ``q_s`` the scaled queries:

    logits = [q_s . k_n + b_n  (n in 3x3) | q_s . k_p + B(q, p)  (pooled p)]
    a      = softmax(logits)
    out    = sum_n (a_n + q_norm . t_n + c_n) v_n + sum_p a_p v_p

Implementations (:data:`ATTN_IMPLS`): ``'reference'``, ``F.unfold`` (the test oracle); ``'fast'``, nine shifted
views of the padded keys and values and blocks of queries, so that no ``(heads, queries, pooled)`` tensor is held
for the whole image or for the backward; ``'triton'``, one fused kernel per direction. All compute in float32.
"""
import functools
import logging
import os
from typing import Callable, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch.autograd.function import once_differentiable

from mmvit_backbones.utils.fast_paths import chunks, use_reference
from mmvit_backbones.utils.tracing import is_capturing, is_exporting
from mmvit_backbones.ops.export_helpers import float32_region
from mmvit_backbones.ops.log_cpb import PoolBias, Size

PoolBiasFn = Callable[[int, int], torch.Tensor]

LOCAL = 9  # 3x3 neighbourhood, row-major over the kernel (F.unfold's order)
OFFSETS = [(dy, dx) for dy in range(3) for dx in range(3)]
# inference processes queries in blocks of at most this many logits (B * heads * queries * (9 + pool)):
# whole query rows, or tiles of one row (4 MB of float32 logits: in cache, and large enough for two threads)
ROW_BLOCK_ELEMENTS = 1 << 20
ATTN_IMPLS = ('auto', 'fast', 'reference', 'triton')


def local_padding_mask(size: Size, device=None) -> torch.Tensor:
    """``(H*W, 9)`` bool, True where the 3x3 neighbour lies outside the map."""
    def outside(n):  # (n, 3): whether positions i - 1, i, i + 1 lie outside 0..n-1
        idx = torch.arange(n, device=device)[:, None] + torch.arange(-1, 2, device=device)
        return (idx < 0) | (idx >= n)
    return (outside(size[0])[:, None, :, None] | outside(size[1])[None, :, None, :]).reshape(-1, LOCAL)


def aggregated_attention(q_scaled: torch.Tensor, q_norm: torch.Tensor, k_local: torch.Tensor,
                         v_local: torch.Tensor, k_pool: torch.Tensor, v_pool: torch.Tensor, *,
                         size: Size, pool_size: Size, local_bias: torch.Tensor, padding_mask: torch.Tensor,
                         pool_bias: PoolBiasFn, learnable_tokens: torch.Tensor, learnable_bias: torch.Tensor,
                         impl: str = 'auto') -> torch.Tensor:
    """Aggregated attention (Eq. 6-9) of ``(B, h, N, d)`` queries on an ``H x W`` map (N = H*W, row-major).

    ``q_scaled``: scaled queries plus query embedding; ``q_norm``: the normalised queries; ``k_local``/``v_local``:
    ``(B, h, N, d)``; ``k_pool``/``v_pool``: ``(B, h, pool_h * pool_w, d)``; ``local_bias``: ``(h, 9)``;
    ``padding_mask``: :func:`local_padding_mask`; ``pool_bias``: a :class:`~mmvit_backbones.ops.log_cpb.PoolBias`
    (``'reference'`` and inference take any callable ``bias(r0, r1) -> (h, r1 - r0, W, pool_h, pool_w)``);
    ``learnable_tokens``: ``(h, d, 9)``; ``learnable_bias``: ``(h, 1, 9)``. Returns ``v_local``'s dtype.
    """
    if impl not in ATTN_IMPLS:
        raise ValueError(f'aggregated_attention: impl must be one of {ATTN_IMPLS}, got {impl!r}')
    impl = resolve_impl(impl, q_scaled.device)
    dtype = v_local.dtype  # q_scaled is float32 in a bf16/fp16 model (times the float32 length scale)
    tensors = (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, learnable_tokens, learnable_bias)
    with float32_region(q_scaled.device.type):
        if impl == 'triton':  # reads any float dtype itself, computes in float32
            usable, why = triton_status()
            if not usable:
                raise RuntimeError(f"aggregated_attention: impl='triton' needs triton >= 2.1: {why}")
            if q_scaled.device.type != 'cuda' and not triton_interpreted():
                raise RuntimeError(f"aggregated_attention: impl='triton' runs on CUDA tensors (or in Triton's CPU "
                                   f"interpreter, TRITON_INTERPRET=1); got {q_scaled.device.type} tensors")
            if not isinstance(pool_bias, PoolBias):
                raise TypeError("aggregated_attention: impl='triton' needs pool_bias as a PoolBias, got "
                                f"{type(pool_bias)}")
            return TritonAggregatedAttention.apply(*tensors, pool_bias.table_h, pool_bias, size, pool_size).to(dtype)
        args = [t.float() for t in tensors]
        kwargs = dict(size=size, pool_size=pool_size, padding_mask=padding_mask, pool_bias=pool_bias)
        if impl == 'reference':
            out = _reference(*args, **kwargs)
        elif is_exporting():  # one graph for every size (the row-block loops would fix the sizes)
            out = _fast_train(*args, **kwargs)
        elif not torch.is_grad_enabled():
            out, _ = _fast_infer(*args, **kwargs)
        elif is_capturing() or not isinstance(pool_bias, PoolBias):  # torch.compile training: plain operators
            out = _fast_train(*args, **kwargs)
        else:  # training: the blocked loop, whose backward recomputes the logits
            out = BlockedAggregatedAttention.apply(*args, pool_bias.table_h, pool_bias, size, pool_size,
                                                   padding_mask)
    return out.to(dtype)


@functools.lru_cache(maxsize=None)
def triton_status() -> Tuple[bool, str]:
    """``(True, 'triton X.Y.Z')`` where the kernel can be compiled (Triton >= 2.1), else ``(False, why not)``."""
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
    """What ``impl`` stands for on ``device``: ``'auto'`` is ``'triton'`` on CUDA with a usable ``triton`` outside
    graph capture, else ``'fast'`` (the first choice per device type is logged)."""
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


def _windows(padded, size):
    """The nine ``(B, h, H, W, d)`` views, in :data:`OFFSETS` order, of a map padded by one on each side."""
    return [padded[:, :, dy:dy + size[0], dx:dx + size[1]] for dy, dx in OFFSETS]


def _shifted(t, size):
    """:func:`_windows` of ``t`` ``(B, h, N, d)`` zero-padded: neighbour ``i`` of every position."""
    b, h, _, d = t.shape
    return _windows(F.pad(t.view(b, h, *size, d), (0, 0, 1, 1, 1, 1)), size)


def _by_offset(weights, size):
    """``(B, h, N, 9)`` -> ``(9, B, h, H, W, 1)``: one contiguous weight map per 3x3 offset."""
    b, h = weights.shape[:2]
    return weights.view(b, h, *size, LOCAL).permute(4, 0, 1, 2, 3).unsqueeze(-1).contiguous()


def _neighbour_dots(a, b_local, size):
    """``(B, h, H, W, 9)``: ``a[n] . b[neighbour i of n]``, zero for neighbours outside the map."""
    b, h, _, d = a.shape
    a5 = a.view(b, h, *size, d)
    if torch.is_grad_enabled() or is_exporting():
        return torch.stack([(a5 * s).sum(-1) for s in _shifted(b_local, size)], dim=-1)
    product = torch.empty_like(a5)  # no autograd: one product buffer reused for the nine offsets
    out = a.new_empty(LOCAL, b, h, *size)
    for i, s in enumerate(_shifted(b_local, size)):
        torch.mul(a5, s, out=product)
        torch.sum(product, dim=-1, out=out[i])
    return out.permute(1, 2, 3, 4, 0)


def _local_logits(q_scaled, k_local, local_bias, padding_mask, size):
    """``(B, h, H, W, 9)`` contiguous 3x3 logits (``-inf`` outside the map)."""
    logits = _neighbour_dots(q_scaled, k_local, size) + local_bias.view(-1, 1, 1, LOCAL)
    return logits.masked_fill(padding_mask.view(*size, LOCAL), float('-inf')).contiguous()


def _local_values(weights, v_local, size, out):
    """``out + sum_n weights_n * v_n`` (adds into ``out``, which must be a fresh tensor of the caller's)."""
    b, h, n, d = v_local.shape
    by_offset, exporting = _by_offset(weights, size), is_exporting()
    out = out.view(b, h, *size, d)
    for i, v in enumerate(_shifted(v_local, size)):
        if exporting:  # out of place: an in-place add through a view is slow to functionalise
            out = out + by_offset[i] * v
        else:
            out.addcmul_(by_offset[i], v)
    return out.reshape(b, h, n, d)


def _scatter_to_neighbours(weights, a, size):
    """The transpose of :func:`_neighbour_dots` in ``b_local``: ``(B, h, N, d)``, ``out[m] = sum of weights[n, i] *
    a[n]`` over the ``(n, i)`` whose neighbour ``i`` is ``m``."""
    b, h, n, d = a.shape
    hh, ww = size
    out_pad = a.new_zeros(b, h, hh + 2, ww + 2, d)
    by_offset = _by_offset(weights, size)
    for i, window in enumerate(_windows(out_pad, size)):
        window.addcmul_(by_offset[i], a.view(b, h, hh, ww, d))
    return out_pad[:, :, 1:hh + 1, 1:ww + 1].reshape(b, h, n, d)


def _local_grads(g, q_scaled, q_norm, tokens, token_bias, a_local, dw, ds_local, size):
    """Gradients of ``q_norm``, ``k_local``, ``v_local`` and the three parameters from local ``a``, ``dw``, ``ds``."""
    weights = (q_norm @ tokens).add_(token_bias).add_(a_local)  # after the softmax: a + q_norm . t + c
    return (dw @ tokens.transpose(-2, -1), _scatter_to_neighbours(ds_local, q_scaled, size),
            _scatter_to_neighbours(weights, g, size), ds_local.sum((0, 2)), (q_norm.transpose(-2, -1) @ dw).sum(0),
            dw.sum((0, 2)).unsqueeze(1))


def _fast_train(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *,
                size, pool_size, padding_mask, pool_bias):
    b, h, n, d = q_scaled.shape
    local = _local_logits(q_scaled, k_local, local_bias, padding_mask, size).view(b, h, n, LOCAL)
    if is_exporting():  # export: no in-place add through a view whose strides are symbolic
        pooled = q_scaled @ k_pool.transpose(-2, -1) + pool_bias(0, size[0]).reshape(h, n, pool_size[0] * pool_size[1])
        logits = torch.cat([local, pooled], dim=-1)
    else:  # nine zero keys/values in front: columns 0..8 of the logits hold the local logits, one softmax
        logits = q_scaled @ F.pad(k_pool, (0, 0, LOCAL, 0)).transpose(-2, -1)  # (B, h, N, 9 + P)
        logits[..., :LOCAL] += local
        logits[..., LOCAL:].view(b, h, *size, *pool_size).add_(pool_bias(0, size[0]))
    attn = logits.softmax(dim=-1)
    x = attn @ F.pad(v_pool, (0, 0, LOCAL, 0))
    return _local_values(q_norm @ tokens + token_bias + attn[..., :LOCAL], v_local, size, x)


def _fast_infer(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias, *,
                size, pool_size, padding_mask, pool_bias, lse=None):
    """The blocked path without autograd: the output and the ``(B, h, N, 9)`` local softmax weights (``lse``
    ``(B*h, H, W)`` gets the log-sum-exps). Per query block (:func:`_row_blocks`) one GEMM against nine zero keys and
    the pooled ones gives the logits, columns 0..8 take the 3x3 logits; one softmax in place, one GEMM with values."""
    b, h, n, d = q_scaled.shape
    hh, ww = size
    cols = LOCAL + pool_size[0] * pool_size[1]
    local3 = _local_logits(q_scaled, k_local, local_bias, padding_mask, size).view(b * h, hh, ww, LOCAL)
    q3 = q_scaled.view(b * h, hh, ww, d)
    k_t = F.pad(k_pool, (0, 0, LOCAL, 0)).transpose(-2, -1).reshape(b * h, d, cols)  # zero keys 0..8
    v_pad = F.pad(v_pool, (0, 0, LOCAL, 0)).reshape(b * h, cols, d)  # zero values 0..8
    x = q_scaled.new_empty(b * h, hh, ww, d)
    blocks, largest = _row_blocks(b, h, size, cols)
    capturing = is_capturing()  # torch.compile: no out= (dynamo refuses a non-contiguous one)
    logits_buf = None if capturing else q_scaled.new_empty(b * h, largest, cols)
    for r0, r1, tiles in blocks:
        bias = pool_bias(r0, r1)  # (h, R, W, ph, pw)
        for c0, c1 in tiles:
            m, block = (r1 - r0) * (c1 - c0), (slice(None), slice(r0, r1), slice(c0, c1))
            q_block = q3[block].reshape(b * h, m, d)
            logits = torch.bmm(q_block, k_t) if capturing else torch.bmm(q_block, k_t, out=logits_buf[:, :m])
            logits.view(b, h, r1 - r0, c1 - c0, cols)[..., LOCAL:].view(
                b, h, r1 - r0, c1 - c0, *pool_size).add_(bias[:, :, c0:c1])
            logits[..., :LOCAL].copy_(local3[block].reshape(b * h, m, LOCAL))
            if lse is not None:
                lse[block] = torch.logsumexp(logits, -1).view(b * h, r1 - r0, c1 - c0)
            if capturing:
                logits = logits.softmax(-1)
                x[block] = torch.bmm(logits, v_pad).view(b * h, r1 - r0, c1 - c0, d)
            else:
                torch.softmax(logits, -1, out=logits)  # row-wise kernel: in place is exact
                torch.bmm(logits, v_pad, out=x[block].view(b * h, m, d))
            local3[block] = logits[..., :LOCAL].view(b * h, r1 - r0, c1 - c0, LOCAL)  # local weights
    a_local = local3.view(b, h, n, LOCAL)
    return _local_values((q_norm @ tokens).add_(token_bias).add_(a_local), v_local, size, x.view(b, h, n, d)), a_local


def _row_blocks(b, h, size, cols):
    """``[(r0, r1, [(c0, c1), ...])]``: blocks of at most :data:`ROW_BLOCK_ELEMENTS` logits (``B * h * queries *
    cols``), whole query rows or one row in tiles of equal width; and the largest block's query count."""
    hh, ww = size
    per_block = max(1, ROW_BLOCK_ELEMENTS // max(1, b * h * cols))  # queries per block (B may be 0)
    if per_block >= ww:  # whole rows
        rows, tile = min(hh, per_block // ww), ww
    else:  # one row in tiles of equal width
        rows, tile = 1, -(-ww // -(-ww // per_block))
    return [(r0, r1, list(chunks(ww, tile))) for r0, r1 in chunks(hh, rows)], rows * tile


class BlockedAggregatedAttention(torch.autograd.Function):
    """The ``'fast'`` path under autograd: the blocked inference loop, saving each query's log-sum-exp, from which
    the backward recomputes the pooled logits block by block (the bias enters as :attr:`PoolBias.table_h`). With
    ``g`` the output gradient: ``da_j = g . v_j``, ``D = sum_j a_j da_j``, ``ds = a (da - D)``."""

    @staticmethod
    def forward(ctx, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                table_h, pool_bias, size, pool_size, padding_mask):
        inputs = [t.contiguous() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool)]
        lse = q_scaled.new_empty(q_scaled.shape[0] * q_scaled.shape[1], *size)
        out, a_local = _fast_infer(*inputs, local_bias, tokens, token_bias, size=size, pool_size=pool_size,
                                   padding_mask=padding_mask, pool_bias=pool_bias, lse=lse)
        ctx.save_for_backward(*inputs, tokens, token_bias, table_h, a_local, lse)
        ctx.pool_bias, ctx.size, ctx.pool_size = pool_bias, size, pool_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        q_scaled, q_norm, k_local, v_local, k_pool, v_pool, tokens, token_bias, table_h, a_local, lse = (
            ctx.saved_tensors)
        size, pool_size, pool_bias = ctx.size, ctx.pool_size, ctx.pool_bias
        b, h, n, d = q_scaled.shape
        hh, ww = size
        p = pool_size[0] * pool_size[1]
        g = grad_out.contiguous()
        dw = _neighbour_dots(g, v_local, size).reshape(b, h, n, LOCAL)  # gradient of the local weights
        delta_local = (a_local * dw).sum(-1)  # the local part of D = sum_j a_j da_j
        ds_local, dq = torch.empty_like(dw), torch.empty_like(q_scaled)
        dk_pool, dv_pool = k_pool.new_zeros(b * h, p, d), v_pool.new_zeros(b * h, p, d)
        table_leaf = table_h.detach().requires_grad_()
        kp = k_pool.reshape(b * h, p, d)
        k_t, v_t = kp.transpose(1, 2), v_pool.reshape(b * h, p, d).transpose(1, 2)
        maps = [t.view(b * h, hh, ww, t.shape[-1]) for t in (q_scaled, g, a_local, dw)]  # read block by block
        maps += [delta_local.view(b * h, hh, ww, 1), lse.view(b * h, hh, ww, 1)]
        ds3, dq3 = ds_local.view(b * h, hh, ww, LOCAL), dq.view(b * h, hh, ww, d)
        blocks, largest = _row_blocks(b, h, size, LOCAL + p)
        attn_buf, grad_buf = q_scaled.new_empty(b * h, largest, p), q_scaled.new_empty(b * h, largest, p)
        for r0, r1, tiles in blocks:
            bias = pool_bias(r0, r1)  # (h, R, W, ph, pw)
            bias_grad = bias.new_zeros(bias.shape)
            for c0, c1 in tiles:
                m, block = (r1 - r0) * (c1 - c0), (slice(None), slice(r0, r1), slice(c0, c1))
                q_blk, g_blk, a_blk, dw_blk, dl_blk, lse_blk = (t[block].reshape(b * h, m, t.shape[-1]) for t in maps)
                attn = torch.bmm(q_blk, k_t, out=attn_buf[:, :m])  # (B*h, m, P): recomputed pooled weights
                attn.view(b, h, r1 - r0, c1 - c0, *pool_size).add_(bias[:, :, c0:c1])
                attn.sub_(lse_blk).exp_()
                ds = torch.bmm(g_blk, v_t, out=grad_buf[:, :m])  # da_p = g . v_p
                delta = (attn * ds).sum(-1) + dl_blk[..., 0]  # D
                ds.sub_(delta[..., None]).mul_(attn)  # ds_p = a_p (da_p - D)
                ds3[block] = (a_blk * (dw_blk - delta[..., None])).view(b * h, r1 - r0, c1 - c0, LOCAL)
                torch.bmm(ds, kp, out=dq3[block].view(b * h, m, d))
                dk_pool.baddbmm_(ds.transpose(1, 2), q_blk)
                dv_pool.baddbmm_(attn.transpose(1, 2), g_blk)
                bias_grad[:, :, c0:c1] += ds.view(b, h, r1 - r0, c1 - c0, *pool_size).sum(0)
            with torch.enable_grad():  # the row block's bias gradient, through the table's embedding_bag
                torch.autograd.backward(pool_bias.rows(table_leaf, r0, r1), bias_grad)
        dq = _local_values(ds_local, k_local, size, dq)  # + the local part: sum_i ds_i k_i
        d_table = table_leaf.grad if table_leaf.grad is not None else torch.zeros_like(table_h)
        dq_norm, dk_local, dv_local, *d_params = _local_grads(g, q_scaled, q_norm, tokens, token_bias, a_local, dw,
                                                              ds_local, size)
        return (dq, dq_norm, dk_local, dv_local, dk_pool.view(k_pool.shape), dv_pool.view(v_pool.shape), *d_params,
                d_table, None, None, None, None)


class TritonAggregatedAttention(torch.autograd.Function):
    """The ``'triton'`` path; the 3x3 and parameter gradients are finished here (:func:`_local_grads`)."""

    @staticmethod
    def forward(ctx, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                table_h, pool_bias, size, pool_size):
        from mmvit_backbones.ops import triton_aggregated_attention as kernel
        inputs = [t.contiguous() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
                                           token_bias, table_h)]
        ctx.taps = (pool_bias.index_h.contiguous(), pool_bias.weight_h.contiguous())
        out, lse = kernel.forward(*inputs, *ctx.taps, size, pool_size, interpreted=triton_interpreted())
        ctx.save_for_backward(*inputs, out, lse)
        ctx.size, ctx.pool_size = size, pool_size
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        from mmvit_backbones.ops import triton_aggregated_attention as kernel
        *inputs, out, lse = ctx.saved_tensors
        q_scaled, q_norm, _, _, _, _, _, tokens, token_bias, _ = inputs
        dq, dkp, dvp, dtable, a_local, dw, ds_local = kernel.backward(
            grad_out, out, lse, *inputs, *ctx.taps, ctx.size, ctx.pool_size, interpreted=triton_interpreted())
        dq_norm, dk_local, dv_local, *d_params = _local_grads(
            grad_out.float(), q_scaled.float(), q_norm.float(), tokens.float(), token_bias.float(), a_local, dw,
            ds_local, ctx.size)
        grads = (dq, dq_norm, dk_local, dv_local, dkp, dvp, *d_params, dtable)
        grads = [gr.to(t.dtype) if ctx.needs_input_grad[i] else None for i, (gr, t) in enumerate(zip(grads, inputs))]
        return (*grads, None, None, None)


def length_scaled_attention(q_scaled: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                            bias: torch.Tensor) -> torch.Tensor:
    """Stage 4's full attention ``softmax(q_s . k + bias) v`` (no 1/sqrt(d)) in float32, in ``v``'s dtype."""
    dtype = v.dtype
    with float32_region(q_scaled.device.type):
        out = F.scaled_dot_product_attention(q_scaled.float(), k.float(), v.float(),
                                             attn_mask=bias.float().unsqueeze(0), scale=1.0)
    return out.to(dtype)
