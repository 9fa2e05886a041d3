"""Aggregated attention of TransNeXt as one Triton kernel per direction (forward, backward).

Imported only when the Triton path is used (:func:`mmvit_backbones.ops.aggregated_attention.triton_status`
decides whether it can be); importing this module imports ``triton``.

Forward, per block of ``BLOCK_M`` queries of one (batch, head):

* the nine 3x3 logits ``q . k_n + b_n`` (neighbours outside the map masked) are read from the neighbouring
  key rows, and enter an online softmax one column at a time, each with its value row;
* the pooled keys are streamed in blocks of ``BLOCK_N``: ``q . k_p`` plus the position bias, gathered inside
  the kernel from the log-CPB table ``table_h`` (the MLP output resized along ``w``, ``(U_h, heads, W, kw)``)
  with the ``h``-axis taps ``sum_t weight_h[i, a, t] * table_h[index_h[i, a, t], head, j, b]`` (so no
  ``(heads, queries, pooled)`` bias exists), join the same online softmax, and their values are accumulated;
* the learnable-token term ``(q_norm . t_n + c_n) v_n`` is added after the softmax.

It writes the output and each query's log-sum-exp. The backward recomputes the logits from them (no attention
matrix is saved) and returns the gradient of the queries; the pooled keys, values and the bias table get theirs
by atomic adds; the per-query local quantities (local weights ``a_n``, their output gradient ``dw_n`` and the
softmax gradient ``ds_n``, ``(B*h, N, 9)`` each) are written out, and the 3x3 key/value gradients and the small
parameters' gradients are finished in PyTorch from them (nine shifted views, as the PyTorch path).

All arithmetic is float32 whatever the input dtype (fp16/bf16 inputs are converted on load); products use
``tl.dot`` in full float32 precision (no TF32). The head dimension is padded to a power of two >= 16 inside the
kernel (masked loads), so 24 works. Triton 2.1 (torch 2.1's) spells the full-precision dot ``allow_tf32=False``,
Triton >= 3 ``input_precision='ieee'``: :func:`_dot` is defined for the installed one.
"""
import inspect

import torch
import triton
import triton.language as tl

LOCAL = 9

if 'input_precision' in inspect.signature(tl.dot).parameters:
    @triton.jit
    def _dot(a, b):
        return tl.dot(a, b, input_precision='ieee')
else:  # triton 2.x
    @triton.jit
    def _dot(a, b):
        return tl.dot(a, b, allow_tf32=False)


@triton.jit
def _pool_bias(table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d,
               HEADS, W, KH, KW, TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Bias of the ``(BLOCK_M, BLOCK_N)`` tile: queries at ``(row, col)``, pooled keys ``offs_n``."""
    a = offs_n // KW
    b = offs_n % KW
    tap_base = (row[:, None] * KH + a[None, :]) * TAPS
    bias = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for t in tl.static_range(TAPS):
        idx = tl.load(index_ptr + tap_base + t, mask=mask_2d, other=0)
        wt = tl.load(weight_ptr + tap_base + t, mask=mask_2d, other=0.0).to(tl.float32)
        val = tl.load(table_ptr + ((idx * HEADS + head) * W + col[:, None]) * KW + b[None, :], mask=mask_2d,
                      other=0.0).to(tl.float32)
        bias += wt * val
    return bias


@triton.jit
def _pool_bias_grad(dtable_ptr, index_ptr, weight_ptr, grad, head, row, col, offs_n, mask_2d,
                    HEADS, W, KH, KW, TAPS: tl.constexpr):
    a = offs_n // KW
    b = offs_n % KW
    tap_base = (row[:, None] * KH + a[None, :]) * TAPS
    for t in tl.static_range(TAPS):
        idx = tl.load(index_ptr + tap_base + t, mask=mask_2d, other=0)
        wt = tl.load(weight_ptr + tap_base + t, mask=mask_2d, other=0.0).to(tl.float32)
        tl.atomic_add(dtable_ptr + ((idx * HEADS + head) * W + col[:, None]) * KW + b[None, :], grad * wt,
                      mask=mask_2d)


@triton.jit
def _aggregated_fwd(q_ptr, qn_ptr, k_ptr, v_ptr, kp_ptr, vp_ptr, lb_ptr, tok_ptr, tb_ptr,
                    table_ptr, index_ptr, weight_ptr, out_ptr, lse_ptr,
                    HEADS, H, W, P, KH, KW, D,
                    TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    head = bh % HEADS
    n = H * W
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    valid_m = offs_m < n
    mask_d = offs_d < D
    row = offs_m // W
    col = offs_m % W
    base = bh.to(tl.int64) * n * D
    pbase = bh.to(tl.int64) * P * D
    md = valid_m[:, None] & mask_d[None, :]
    q = tl.load(q_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=md, other=0.0).to(tl.float32)
    qn = tl.load(qn_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=md, other=0.0).to(tl.float32)

    # running maximum starts finite: a first column that is masked (-inf) then gives exp(-inf + 1e30) = 0
    m_i = tl.zeros([BLOCK_M], dtype=tl.float32) - 1.0e30
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    tok_acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for i in tl.static_range(9):  # the 3x3 neighbourhood, one softmax column at a time
        nr = row + (i // 3 - 1)
        nc = col + (i % 3 - 1)
        inside = valid_m & (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W)
        nb = (nr * W + nc)[:, None] * D + offs_d[None, :]
        nmask = inside[:, None] & mask_d[None, :]
        kn = tl.load(k_ptr + base + nb, mask=nmask, other=0.0).to(tl.float32)
        vn = tl.load(v_ptr + base + nb, mask=nmask, other=0.0).to(tl.float32)
        s = tl.sum(q * kn, 1) + tl.load(lb_ptr + head * 9 + i).to(tl.float32)
        s = tl.where(inside, s, float('-inf'))
        m_new = tl.maximum(m_i, s)
        alpha = tl.exp(m_i - m_new)
        e = tl.exp(s - m_new)
        l_i = l_i * alpha + e
        acc = acc * alpha[:, None] + e[:, None] * vn
        m_i = m_new
        t = tl.load(tok_ptr + (head * D + offs_d) * 9 + i, mask=mask_d, other=0.0).to(tl.float32)
        u = tl.sum(qn * t[None, :], 1) + tl.load(tb_ptr + head * 9 + i).to(tl.float32)
        tok_acc += u[:, None] * vn  # learnable tokens: after the softmax (vn is zero outside the map)

    for start in range(0, P, BLOCK_N):  # pooled keys, streamed
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < P
        nd = mask_n[:, None] & mask_d[None, :]
        kp = tl.load(kp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], mask=nd, other=0.0).to(tl.float32)
        vp = tl.load(vp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], mask=nd, other=0.0).to(tl.float32)
        mask_2d = valid_m[:, None] & mask_n[None, :]
        sp = _dot(q, tl.trans(kp))
        sp += _pool_bias(table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d, HEADS, W, KH, KW, TAPS,
                         BLOCK_M, BLOCK_N)
        sp = tl.where(mask_2d, sp, float('-inf'))
        m_new = tl.maximum(m_i, tl.max(sp, 1))
        alpha = tl.exp(m_i - m_new)
        ep = tl.exp(sp - m_new[:, None])
        l_i = l_i * alpha + tl.sum(ep, 1)
        acc = acc * alpha[:, None] + _dot(ep, vp)
        m_i = m_new

    l_safe = tl.where(l_i > 0, l_i, 1.0)
    out = acc / l_safe[:, None] + tok_acc
    tl.store(out_ptr + base + offs_m[:, None] * D + offs_d[None, :], out, mask=md)
    tl.store(lse_ptr + bh.to(tl.int64) * n + offs_m, m_i + tl.log(l_safe), mask=valid_m)


@triton.jit
def _aggregated_bwd(q_ptr, qn_ptr, k_ptr, v_ptr, kp_ptr, vp_ptr, lb_ptr, tok_ptr, tb_ptr,
                    table_ptr, index_ptr, weight_ptr, g_ptr, lse_ptr, delta_ptr,
                    dq_ptr, dkp_ptr, dvp_ptr, dtable_ptr, a_loc_ptr, dw_ptr, ds_loc_ptr,
                    HEADS, H, W, P, KH, KW, D,
                    TAPS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    pid_m = tl.program_id(0)
    bh = tl.program_id(1)
    head = bh % HEADS
    n = H * W
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    valid_m = offs_m < n
    mask_d = offs_d < D
    row = offs_m // W
    col = offs_m % W
    base = bh.to(tl.int64) * n * D
    pbase = bh.to(tl.int64) * P * D
    lbase = bh.to(tl.int64) * n * 9
    md = valid_m[:, None] & mask_d[None, :]
    q = tl.load(q_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=md, other=0.0).to(tl.float32)
    qn = tl.load(qn_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=md, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + base + offs_m[:, None] * D + offs_d[None, :], mask=md, other=0.0).to(tl.float32)
    lse = tl.load(lse_ptr + bh.to(tl.int64) * n + offs_m, mask=valid_m, other=0.0)
    # D = sum_j a_j da_j = g . out - sum_n u_n dw_n  (out includes the learnable-token term)
    delta = tl.load(delta_ptr + bh.to(tl.int64) * n + offs_m, mask=valid_m, other=0.0)
    for i in tl.static_range(9):
        nr = row + (i // 3 - 1)
        nc = col + (i % 3 - 1)
        inside = valid_m & (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W)
        nb = (nr * W + nc)[:, None] * D + offs_d[None, :]
        vn = tl.load(v_ptr + base + nb, mask=inside[:, None] & mask_d[None, :], other=0.0).to(tl.float32)
        dw = tl.sum(g * vn, 1)
        t = tl.load(tok_ptr + (head * D + offs_d) * 9 + i, mask=mask_d, other=0.0).to(tl.float32)
        u = tl.sum(qn * t[None, :], 1) + tl.load(tb_ptr + head * 9 + i).to(tl.float32)
        delta -= u * dw
        tl.store(dw_ptr + lbase + offs_m * 9 + i, dw, mask=valid_m)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for i in tl.static_range(9):
        nr = row + (i // 3 - 1)
        nc = col + (i % 3 - 1)
        inside = valid_m & (nr >= 0) & (nr < H) & (nc >= 0) & (nc < W)
        nb = (nr * W + nc)[:, None] * D + offs_d[None, :]
        nmask = inside[:, None] & mask_d[None, :]
        kn = tl.load(k_ptr + base + nb, mask=nmask, other=0.0).to(tl.float32)
        vn = tl.load(v_ptr + base + nb, mask=nmask, other=0.0).to(tl.float32)
        s = tl.sum(q * kn, 1) + tl.load(lb_ptr + head * 9 + i).to(tl.float32)
        a = tl.where(inside, tl.exp(s - lse), 0.0)
        ds = a * (tl.sum(g * vn, 1) - delta)
        dq += ds[:, None] * kn
        tl.store(a_loc_ptr + lbase + offs_m * 9 + i, a, mask=valid_m)
        tl.store(ds_loc_ptr + lbase + offs_m * 9 + i, ds, mask=valid_m)

    for start in range(0, P, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < P
        nd = mask_n[:, None] & mask_d[None, :]
        kp = tl.load(kp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], mask=nd, other=0.0).to(tl.float32)
        vp = tl.load(vp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], mask=nd, other=0.0).to(tl.float32)
        mask_2d = valid_m[:, None] & mask_n[None, :]
        sp = _dot(q, tl.trans(kp))
        sp += _pool_bias(table_ptr, index_ptr, weight_ptr, head, row, col, offs_n, mask_2d, HEADS, W, KH, KW, TAPS,
                         BLOCK_M, BLOCK_N)
        ap = tl.where(mask_2d, tl.exp(sp - lse[:, None]), 0.0)
        dap = _dot(g, tl.trans(vp))
        dsp = ap * (dap - delta[:, None])
        dq += _dot(dsp, kp)
        tl.atomic_add(dkp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], _dot(tl.trans(dsp), q), mask=nd)
        tl.atomic_add(dvp_ptr + pbase + offs_n[:, None] * D + offs_d[None, :], _dot(tl.trans(ap), g), mask=nd)
        _pool_bias_grad(dtable_ptr, index_ptr, weight_ptr, dsp, head, row, col, offs_n, mask_2d,
                        HEADS, W, KH, KW, TAPS)
    tl.store(dq_ptr + base + offs_m[:, None] * D + offs_d[None, :], dq, mask=md)


def _blocks(d: int, interpreted: bool):
    block_d = max(16, triton.next_power_of_2(d))
    if interpreted:  # the interpreter pays per operation, not per element: few programs keep the tests quick
        return 64, 32, block_d
    return 64, 64, block_d


def _launch_shape(q, size, pool_size):
    b, h, n, d = q.shape
    return b, h, n, d, size[0], size[1], pool_size[0] * pool_size[1]


def forward(q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
            table_h, index_h, weight_h, size, pool_size, interpreted=False):
    """Output ``(B, h, N, d)`` float32 and log-sum-exp ``(B*h, N)``; inputs contiguous, any float dtype."""
    b, h, n, d, hh, ww, p = _launch_shape(q_scaled, size, pool_size)
    out = torch.empty(b, h, n, d, dtype=torch.float32, device=q_scaled.device)
    lse = torch.empty(b * h, n, dtype=torch.float32, device=q_scaled.device)
    if b == 0 or n == 0:
        return out, lse
    block_m, block_n, block_d = _blocks(d, interpreted)
    grid = (triton.cdiv(n, block_m), b * h)
    _aggregated_fwd[grid](q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                          table_h, index_h, weight_h, out, lse,
                          h, hh, ww, p, pool_size[0], pool_size[1], d,
                          TAPS=index_h.shape[-1], BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d)
    return out, lse


def backward(grad_out, out, lse, q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens,
             token_bias, table_h, index_h, weight_h, size, pool_size, interpreted=False):
    """``dq``, ``dk_pool``, ``dv_pool``, ``d_table`` (float32) and the local ``a``, ``dw``, ``ds``
    ``(B, h, N, 9)`` from which the caller finishes the 3x3 and parameter gradients."""
    b, h, n, d, hh, ww, p = _launch_shape(q_scaled, size, pool_size)
    dev = q_scaled.device
    dq = torch.empty(b, h, n, d, dtype=torch.float32, device=dev)
    dkp = torch.zeros(b, h, p, d, dtype=torch.float32, device=dev)
    dvp = torch.zeros(b, h, p, d, dtype=torch.float32, device=dev)
    dtable = torch.zeros(table_h.shape, dtype=torch.float32, device=dev)
    a_loc, dw, ds_loc = (torch.zeros(b, h, n, LOCAL, dtype=torch.float32, device=dev) for _ in range(3))
    if b == 0 or n == 0:
        return dq, dkp, dvp, dtable, a_loc, dw, ds_loc
    g = grad_out.contiguous()
    delta = (g.float() * out).sum(-1).reshape(b * h, n).contiguous()  # g . out, corrected in the kernel
    block_m, block_n, block_d = _blocks(d, interpreted)
    grid = (triton.cdiv(n, block_m), b * h)
    _aggregated_bwd[grid](q_scaled, q_norm, k_local, v_local, k_pool, v_pool, local_bias, tokens, token_bias,
                          table_h, index_h, weight_h, g, lse, delta,
                          dq, dkp, dvp, dtable, a_loc, dw, ds_loc,
                          h, hh, ww, p, pool_size[0], pool_size[1], d,
                          TAPS=index_h.shape[-1], BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d)
    return dq, dkp, dvp, dtable, a_loc, dw, ds_loc
