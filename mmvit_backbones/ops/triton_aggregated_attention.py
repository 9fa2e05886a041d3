"""Aggregated attention of TransNeXt as one Triton kernel per direction (imported, with ``triton``, only when used).

A program takes ``BLOCK_M`` queries of one (batch, head). The forward feeds the nine 3x3 logits (masked outside the
map) to an online softmax one column at a time, then the pooled keys in blocks of ``BLOCK_N``, their bias gathered
from the log-CPB table ``table_h`` (``(U_h, heads, W, kw)``) by the ``h``-axis taps, adds the learnable-token term
after the softmax and writes the output and each query's log-sum-exp. The backward recomputes the logits, writes
the query gradient, atomically adds those of the pooled keys, values and bias table, and writes the local weights,
their gradient and the softmax gradient (``(B*h, N, 9)`` each) for PyTorch to finish the others.

All arithmetic is float32; ``tl.dot`` runs without TF32 (:func:`_dot`). The head dimension is padded to a power of
two >= 16 (masked loads), so 24 works.
"""
import inspect

import torch
import triton
import triton.language as tl

if 'input_precision' in inspect.signature(tl.dot).parameters:
    @triton.jit
    def _dot(a, b):
        return tl.dot(a, b, input_precision='ieee')
else:  # triton 2.1 spells it allow_tf32
    @triton.jit
    def _dot(a, b):
        return tl.dot(a, b, allow_tf32=False)


@triton.jit
def _tile_ptrs(ptr, base, rows, offs_d, D):
    return ptr + base + rows[:, None] * D + offs_d[None, :]


@triton.jit
def _load_tile(ptr, base, rows, valid_rows, offs_d, mask_d, D):
    mask = valid_rows[:, None] & mask_d[None, :]
    return tl.load(_tile_ptrs(ptr, base, rows, offs_d, D), mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _neighbour(row, col, valid_m, I: tl.constexpr, H, W):
    """Flat index of neighbour ``I`` (row-major 3x3) of the queries at ``(row, col)``; -1 outside the map."""
    nr, nc = row + (I // 3 - 1), col + (I % 3 - 1)
    return tl.where(valid_m & (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W), nr * W + nc, -1)


@triton.jit
def _local_logit(q, kn, nb, lb_ptr, head, I: tl.constexpr):
    """``q . k_n + b_n`` of neighbour ``I``, ``-inf`` where it is outside the map (``nb < 0``)."""
    s = tl.sum(q * kn, 1) + tl.load(lb_ptr + head * 9 + I).to(tl.float32)
    return tl.where(nb >= 0, s, float('-inf'))


@triton.jit
def _token_weight(tok_ptr, tb_ptr, qn, head, I: tl.constexpr, offs_d, mask_d, D):
    """``q_norm . t_n + c_n`` of neighbour ``I``: the learnable-token weight, added after the softmax."""
    t = tl.load(tok_ptr + (head * D + offs_d) * 9 + I, mask=mask_d, other=0.0).to(tl.float32)
    return tl.sum(qn * t[None, :], 1) + tl.load(tb_ptr + head * 9 + I).to(tl.float32)


@triton.jit
def _table_ptrs(table_ptr, index_ptr, tap, head, col, b, mask_2d, HEADS, W, KW):
    """Pointers to ``table_h[index_h[tap], head, col, b]`` (``tap``: flat positions in ``index_h``)."""
    idx = tl.load(index_ptr + tap, mask=mask_2d, other=0)
    return table_ptr + ((idx * HEADS + head) * W + col[:, None]) * KW + b[None, :]


@triton.jit
def _pooled_logits(q, kp, table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d,
                   HEADS, W, KH, KW, TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """``q . k_p`` plus the position bias: ``(BLOCK_M, BLOCK_N)``, queries at ``(row, col)``, pooled keys ``offs_n``."""
    tap_base = (row[:, None] * KH + (offs_n // KW)[None, :]) * TAPS
    bias = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for t in tl.static_range(TAPS):
        wt = tl.load(weight_ptr + tap_base + t, mask=mask_2d, other=0.0).to(tl.float32)
        ptrs = _table_ptrs(table_ptr, index_ptr, tap_base + t, head, col, offs_n % KW, mask_2d, HEADS, W, KW)
        bias += wt * tl.load(ptrs, mask=mask_2d, other=0.0).to(tl.float32)
    return _dot(q, tl.trans(kp)) + bias


@triton.jit
def _aggregated_fwd(q_ptr, qn_ptr, k_ptr, v_ptr, kp_ptr, vp_ptr, lb_ptr, tok_ptr, tb_ptr,
                    table_ptr, index_ptr, weight_ptr, out_ptr, lse_ptr,
                    HEADS, H, W, P, KH, KW, D,
                    TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(1)
    head = bh % HEADS
    n = H * W
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    valid_m, mask_d = offs_m < n, offs_d < D
    row, col = offs_m // W, offs_m % W
    base, pbase = bh.to(tl.int64) * n * D, bh.to(tl.int64) * P * D
    q = _load_tile(q_ptr, base, offs_m, valid_m, offs_d, mask_d, D)
    qn = _load_tile(qn_ptr, base, offs_m, valid_m, offs_d, mask_d, D)

    # running maximum starts finite: a first column that is masked (-inf) then gives exp(-inf + 1e30) = 0
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - 1.0e30
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    tok_acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for i in tl.static_range(9):  # the 3x3 neighbourhood, one softmax column at a time
        nb = _neighbour(row, col, valid_m, i, H, W)
        kn = _load_tile(k_ptr, base, nb, nb >= 0, offs_d, mask_d, D)
        vn = _load_tile(v_ptr, base, nb, nb >= 0, offs_d, mask_d, D)
        s = _local_logit(q, kn, nb, lb_ptr, head, i)
        m_new = tl.maximum(m_i, s)
        alpha = tl.exp(m_i - m_new)
        e = tl.exp(s - m_new)
        l_i = l_i * alpha + e
        acc = acc * alpha[:, None] + e[:, None] * vn
        m_i = m_new
        u = _token_weight(tok_ptr, tb_ptr, qn, head, i, offs_d, mask_d, D)
        tok_acc += u[:, None] * vn  # learnable tokens: after the softmax (vn is zero outside the map)

    for start in range(0, P, BLOCK_N):  # pooled keys, streamed
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < P
        kp = _load_tile(kp_ptr, pbase, offs_n, mask_n, offs_d, mask_d, D)
        vp = _load_tile(vp_ptr, pbase, offs_n, mask_n, offs_d, mask_d, D)
        mask_2d = valid_m[:, None] & mask_n[None, :]
        sp = _pooled_logits(q, kp, table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d, HEADS, W, KH,
                            KW, TAPS, BLOCK_M, BLOCK_N)
        sp = tl.where(mask_2d, sp, float('-inf'))
        m_new = tl.maximum(m_i, tl.max(sp, 1))
        alpha = tl.exp(m_i - m_new)
        ep = tl.exp(sp - m_new[:, None])
        l_i = l_i * alpha + tl.sum(ep, 1)
        acc = acc * alpha[:, None] + _dot(ep, vp)
        m_i = m_new

    l_safe = tl.where(l_i > 0, l_i, 1.0)
    out = acc / l_safe[:, None] + tok_acc
    tl.store(_tile_ptrs(out_ptr, base, offs_m, offs_d, D), out, mask=valid_m[:, None] & mask_d[None, :])
    tl.store(lse_ptr + bh.to(tl.int64) * n + offs_m, m_i + tl.log(l_safe), mask=valid_m)


@triton.jit
def _aggregated_bwd(q_ptr, qn_ptr, k_ptr, v_ptr, kp_ptr, vp_ptr, lb_ptr, tok_ptr, tb_ptr,
                    table_ptr, index_ptr, weight_ptr, g_ptr, lse_ptr, delta_ptr,
                    dq_ptr, dkp_ptr, dvp_ptr, dtable_ptr, a_loc_ptr, dw_ptr, ds_loc_ptr,
                    HEADS, H, W, P, KH, KW, D,
                    TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    bh = tl.program_id(1)
    head = bh % HEADS
    n = H * W
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    valid_m, mask_d = offs_m < n, offs_d < D
    row, col = offs_m // W, offs_m % W
    base, pbase = bh.to(tl.int64) * n * D, bh.to(tl.int64) * P * D
    lbase = bh.to(tl.int64) * n * 9
    q = _load_tile(q_ptr, base, offs_m, valid_m, offs_d, mask_d, D)
    qn = _load_tile(qn_ptr, base, offs_m, valid_m, offs_d, mask_d, D)
    g = _load_tile(g_ptr, base, offs_m, valid_m, offs_d, mask_d, D)
    lse = tl.load(lse_ptr + bh.to(tl.int64) * n + offs_m, mask=valid_m, other=0.0)
    # D = sum_j a_j da_j = g . out - sum_n u_n dw_n  (out includes the learnable-token term)
    delta = tl.load(delta_ptr + bh.to(tl.int64) * n + offs_m, mask=valid_m, other=0.0)
    for i in tl.static_range(9):
        nb = _neighbour(row, col, valid_m, i, H, W)
        dw = tl.sum(g * _load_tile(v_ptr, base, nb, nb >= 0, offs_d, mask_d, D), 1)
        delta -= _token_weight(tok_ptr, tb_ptr, qn, head, i, offs_d, mask_d, D) * dw
        tl.store(dw_ptr + lbase + offs_m * 9 + i, dw, mask=valid_m)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for i in tl.static_range(9):
        nb = _neighbour(row, col, valid_m, i, H, W)
        kn = _load_tile(k_ptr, base, nb, nb >= 0, offs_d, mask_d, D)
        vn = _load_tile(v_ptr, base, nb, nb >= 0, offs_d, mask_d, D)
        a = tl.exp(_local_logit(q, kn, nb, lb_ptr, head, i) - lse)  # zero outside the map
        ds = a * (tl.sum(g * vn, 1) - delta)
        dq += ds[:, None] * kn
        tl.store(a_loc_ptr + lbase + offs_m * 9 + i, a, mask=valid_m)
        tl.store(ds_loc_ptr + lbase + offs_m * 9 + i, ds, mask=valid_m)

    for start in range(0, P, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < P
        kp = _load_tile(kp_ptr, pbase, offs_n, mask_n, offs_d, mask_d, D)
        vp = _load_tile(vp_ptr, pbase, offs_n, mask_n, offs_d, mask_d, D)
        mask_2d = valid_m[:, None] & mask_n[None, :]
        sp = _pooled_logits(q, kp, table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d, HEADS, W, KH,
                            KW, TAPS, BLOCK_M, BLOCK_N)
        ap = tl.where(mask_2d, tl.exp(sp - lse[:, None]), 0.0)
        dsp = ap * (_dot(g, tl.trans(vp)) - delta[:, None])
        dq += _dot(dsp, kp)
        nd = mask_n[:, None] & mask_d[None, :]
        tl.atomic_add(_tile_ptrs(dkp_ptr, pbase, offs_n, offs_d, D), _dot(tl.trans(dsp), q), mask=nd)
        tl.atomic_add(_tile_ptrs(dvp_ptr, pbase, offs_n, offs_d, D), _dot(tl.trans(ap), g), mask=nd)
        tap_base = (row[:, None] * KH + (offs_n // KW)[None, :]) * TAPS
        for t in tl.static_range(TAPS):  # the bias table's gradient, through the h-axis taps
            wt = tl.load(weight_ptr + tap_base + t, mask=mask_2d, other=0.0).to(tl.float32)
            ptrs = _table_ptrs(dtable_ptr, index_ptr, tap_base + t, head, col, offs_n % KW, mask_2d, HEADS, W, KW)
            tl.atomic_add(ptrs, dsp * wt, mask=mask_2d)
    tl.store(_tile_ptrs(dq_ptr, base, offs_m, offs_d, D), dq, mask=valid_m[:, None] & mask_d[None, :])


def _launch(kernel, q, tensors, index_h, size, pool_size, interpreted):
    """One program per ``BLOCK_M`` queries of one (batch, head); blocks of ``BLOCK_N`` pooled keys."""
    b, h, n, d = q.shape
    block_d = max(16, triton.next_power_of_2(d))
    # the interpreter pays per operation, not per element: few programs keep the tests quick
    block_m, block_n = (64, 32) if interpreted else (64, 64)
    kernel[(triton.cdiv(n, block_m), b * h)](*tensors, h, *size, pool_size[0] * pool_size[1], *pool_size, d,
                                             TAPS=index_h.shape[-1], BLOCK_M=block_m, BLOCK_N=block_n,
                                             BLOCK_D=block_d)


def forward(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
            table_h, index_h, weight_h, size, pool_size, interpreted=False):
    """Output ``(B, h, N, d)`` float32 and log-sum-exp ``(B*h, N)``; inputs contiguous, any float dtype."""
    b, h, n, d = q_scaled.shape
    out = torch.empty(b, h, n, d, dtype=torch.float32, device=q_scaled.device)
    lse = torch.empty(b * h, n, dtype=torch.float32, device=q_scaled.device)
    if b and n:
        _launch(_aggregated_fwd, q_scaled, (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
                                            token_bias, table_h, index_h, weight_h, out, lse),
                index_h, size, pool_size, interpreted)
    return out, lse


def backward(grad_out, out, lse, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
             token_bias, table_h, index_h, weight_h, size, pool_size, interpreted=False):
    """``dq``, ``dk_pool``, ``dv_pool``, ``d_table`` and the local ``a``, ``dw``, ``ds`` ``(B, h, N, 9)``, float32."""
    b, h, n, d = q_scaled.shape
    p = pool_size[0] * pool_size[1]
    f32 = dict(dtype=torch.float32, device=q_scaled.device)
    dq, dtable = torch.empty(b, h, n, d, **f32), torch.zeros(table_h.shape, **f32)
    dkp, dvp = torch.zeros(b, h, p, d, **f32), torch.zeros(b, h, p, d, **f32)
    a_loc, dw, ds_loc = (torch.zeros(b, h, n, 9, **f32) for _ in range(3))
    if b and n:
        g = grad_out.contiguous()
        delta = (g.float() * out).sum(-1).reshape(b * h, n).contiguous()  # g . out, corrected in the kernel
        _launch(_aggregated_bwd, q_scaled, (q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
                                            token_bias, table_h, index_h, weight_h, g, lse, delta,
                                            dq, dkp, dvp, dtable, a_loc, dw, ds_loc),
                index_h, size, pool_size, interpreted)
    return dq, dkp, dvp, dtable, a_loc, dw, ds_loc
