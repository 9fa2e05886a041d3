"""Aggregated attention of TransNeXt (Shi, CVPR 2024, Sec. 3.2, Eq. 6-9), without a CUDA build.

Each query attends, in one softmax, to its 3x3 neighbourhood (fine keys, zero-padded and masked at
the borders) and to a pooled map (coarse keys). The local attention weights are then shifted by a
query-dependent "learnable tokens" term *after* the softmax. With ``q_s`` the scaled queries:

    logits = [q_s . k_n + b_n  (n in 3x3) | q_s . k_p + B(q, p)  (pooled p)]
    a      = softmax(logits)
    out    = sum_n (a_n + q_norm . t_n + c_n) v_n + sum_p a_p v_p

Two implementations sit behind :func:`aggregated_attention`:

* ``'reference'``: a direct transcription with ``F.unfold`` (nine copies of the keys and values),
  kept for readability and as the test oracle;
* ``'fast'``: the 3x3 logits and the local output are nine shifted views of one zero-padded key
  (value) map, so no 9x copy exists; the pooled logits are computed against keys padded with nine
  zero rows so that local and pooled logits share one tensor and one softmax. Without autograd
  (inference) it processes blocks of query rows (or tiles of one row), so the ``(heads, queries,
  pooled keys)`` logits and the position bias are never held for the whole image.

Both compute in float32 (cosine logits, softmax) whatever the input dtype, and return the dtype of the
values (what the output projection expects; the scaled queries may be float32 through the length scale).
"""
from typing import Callable, Tuple

import torch
import torch.nn.functional as F

from mmvit_backbones.models.layers.tracing import is_capturing, is_exporting
from mmvit_backbones.ops.export_helpers import float32_region

Size = Tuple[int, int]
# bias(r0, r1) -> (heads, r1 - r0, W, pool_h, pool_w): the pooled-path bias of query rows r0:r1
PoolBiasFn = Callable[[int, int], torch.Tensor]

LOCAL = 9  # 3x3 neighbourhood, row-major over the kernel (F.unfold's order)
OFFSETS = [(dy, dx) for dy in range(3) for dx in range(3)]
# inference processes queries in blocks of at most this many logits (B * heads * queries * (9 + pool)):
# whole query rows, or tiles of one row (4 MB of float32 logits: in cache, and large enough for two threads)
ROW_BLOCK_ELEMENTS = 1 << 20


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
                         impl: str = 'fast') -> torch.Tensor:
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
        pool_bias: ``bias(r0, r1) -> (h, r1 - r0, W, pool_h, pool_w)`` position bias of the pooled logits.
        learnable_tokens: ``(h, d, 9)``; learnable_bias: ``(h, 1, 9)``.
        impl: ``'fast'`` or ``'reference'``.

    Returns:
        ``(B, h, N, d)`` in the dtype of ``v_local``.
    """
    if impl not in ('fast', 'reference'):
        raise ValueError(f"aggregated_attention: impl must be 'fast' or 'reference', got {impl!r}")
    dtype = v_local.dtype  # q_scaled is float32 in a bf16/fp16 model (times the float32 length scale)
    with float32_region(q_scaled.device.type):
        args = [t.float() for t in (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias,
                                    learnable_tokens, learnable_bias)]
        # export: the single-shot path (the inference row-block loop would fix the sizes)
        fast = _fast_train if torch.is_grad_enabled() or is_exporting() else _fast_infer
        fn = _reference if impl == 'reference' else fast
        out = fn(*args, size=size, pool_size=pool_size, padding_mask=padding_mask, pool_bias=pool_bias)
    return out.to(dtype)


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
    """Blocks of query rows; per block one ``(B*h, R*W, 9 + P)`` logits buffer, allocated once: one GEMM
    against the pooled keys with nine zero keys in front writes it, the 3x3 logits fill columns 0..8 and the
    position bias is added to the rest, one softmax runs in place, one GEMM with the values (nine zero
    values in front) gives the pooled output. Blocks are whole query rows, or tiles of one row."""
    b, h, n, d = q_scaled.shape
    hh, ww = size
    ph, pw = pool_size
    cols = LOCAL + ph * pw
    local = _local_logits(q_scaled, k_local, local_bias, padding_mask, size)  # (B, h, H, W, 9)
    q3 = q_scaled.view(b * h, hh, ww, d)
    k_t = F.pad(k_pool, (0, 0, LOCAL, 0)).transpose(-2, -1).reshape(b * h, d, cols)  # zero keys 0..8
    v_pad = F.pad(v_pool, (0, 0, LOCAL, 0)).reshape(b * h, cols, d)  # zero values 0..8
    x = q_scaled.new_empty(b * h, hh, ww, d)
    per_block = max(1, ROW_BLOCK_ELEMENTS // max(1, b * h * cols))  # queries per block (B may be 0)
    if per_block >= ww:  # whole rows
        rows, tile = min(hh, per_block // ww), ww
    else:  # one row in tiles of equal width
        rows, tile = 1, -(-ww // -(-ww // per_block))
    capturing = is_capturing()
    logits_buf = None if capturing else q_scaled.new_empty(b * h, rows * tile, cols)
    local3 = local.view(b * h, hh, ww, LOCAL)
    for r0 in range(0, hh, rows):
        r1 = min(hh, r0 + rows)
        bias = pool_bias(r0, r1)  # (h, R, W, ph, pw)
        for c0 in range(0, ww, tile):
            c1 = min(ww, c0 + tile)
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
                torch.softmax(logits, -1, out=logits)  # row-wise kernel: in place is exact
                torch.bmm(logits, v_pad, out=x[:, r0:r1, c0:c1].view(b * h, m, d))
            local3[:, r0:r1, c0:c1] = logits[..., :LOCAL].view(b * h, r1 - r0, c1 - c0, LOCAL)  # local weights
    weights = (q_norm @ tokens).add_(token_bias).add_(local.view(b, h, n, LOCAL))
    return _local_values(weights, v_local, size, x.view(b, h, n, d))


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
