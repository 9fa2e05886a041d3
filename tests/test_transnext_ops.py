"""Aggregated attention: fast vs reference (fp32/bf16/fp16, forward/backward), what the training path saves
for the backward, and the lazy position bias."""
import pytest
import torch
import torch.nn.functional as F

from mmvit_backbones.ops import aggregated_attention as aa
from mmvit_backbones.ops.log_cpb import PoolBias, bias_geometry, evaluate_cpb


def _inputs(b=2, h=3, d=8, size=(7, 10), pool=(2, 3), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, p = size[0] * size[1], pool[0] * pool[1]

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(dtype).requires_grad_()

    q_norm = F.normalize(torch.randn(b, h, n, d, generator=g), dim=-1)
    q_scaled = ((q_norm + 0.1) * 4.0).to(dtype).requires_grad_()
    tensors = dict(
        q_scaled=q_scaled, q_norm=q_norm.to(dtype).requires_grad_(),
        k_local=F.normalize(torch.randn(b, h, n, d, generator=g), dim=-1).to(dtype).requires_grad_(),
        v_local=r(b, h, n, d),
        k_pool=F.normalize(torch.randn(b, h, p, d, generator=g), dim=-1).to(dtype).requires_grad_(),
        v_pool=r(b, h, p, d),
        local_bias=r(h, 9, scale=0.5), learnable_tokens=r(h, d, 9, scale=0.1), learnable_bias=r(h, 1, 9, scale=0.1))
    bias = r(h, size[0], size[1], pool[0], pool[1])
    return tensors, bias


def _run(impl, tensors, bias, size, pool):
    return aa.aggregated_attention(
        **tensors, size=size, pool_size=pool, padding_mask=aa.local_padding_mask(size),
        pool_bias=PoolBias.from_dense(bias), impl=impl)


# training path (BlockedAggregatedAttention): one block; blocks of one row; tiles of 4, 4, 2 queries; batch 0
@pytest.mark.parametrize('size,pool,b,block', [((7, 10), (2, 3), 2, 1 << 22), ((7, 10), (2, 3), 2, 2 * 3 * 15 * 10),
                                               ((7, 10), (2, 3), 2, 2 * 3 * 15 * 4), ((1, 5), (1, 1), 2, 1 << 22),
                                               ((8, 8), (4, 4), 1, 1 << 22), ((5, 6), (2, 2), 0, 1 << 22)])
def test_fast_matches_reference_fp32_forward_backward(monkeypatch, size, pool, b, block):
    monkeypatch.setattr(aa, 'ROW_BLOCK_ELEMENTS', block)
    tensors, bias = _inputs(b=b, size=size, pool=pool)
    outs, grads = [], []
    for impl in ('reference', 'fast'):
        out = _run(impl, tensors, bias, size, pool)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append({k: v.grad.clone() for k, v in list(tensors.items()) + [('bias', bias)]})
        for v in list(tensors.values()) + [bias]:
            v.grad = None
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-5)
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-5, msg=k)


def _saved_numels(fn):
    """Sizes of the tensors autograd saves for the backward while ``fn`` runs."""
    numels = []

    def pack(t):
        numels.append(t.numel())
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return numels


def test_training_path_saves_no_pooled_logits():
    """The PyTorch training path keeps no ``(heads, queries, pooled)`` tensor for the backward (it recomputes
    the pooled logits block by block); the reference path, which keeps its softmax, shows the check sees one."""
    torch.manual_seed(0)
    size, pool, heads = (16, 16), (8, 8), 2
    tensors, _ = _inputs(b=1, h=heads, size=size, pool=pool)
    fc1, fc2 = torch.nn.Linear(2, 512), torch.nn.Linear(512, heads)
    geometry = bias_geometry(size, pool, 14, None, 2, torch.device('cpu'))
    pooled_logits = heads * size[0] * size[1] * pool[0] * pool[1]

    def run(impl):
        bias = PoolBias(evaluate_cpb(fc1, fc2, geometry), geometry)
        out = aa.aggregated_attention(**tensors, size=size, pool_size=pool, padding_mask=aa.local_padding_mask(size),
                                      pool_bias=bias, impl=impl)
        out.sum().backward()
    assert max(_saved_numels(lambda: run('reference'))) >= pooled_logits
    assert max(_saved_numels(lambda: run('fast'))) < pooled_logits // 4


# one block; blocks of two query rows; tiles of 4, 4, 2 queries of one row; one query per block
@pytest.mark.parametrize('block', [1 << 22, 2 * 3 * 15 * 20, 2 * 3 * 15 * 4, 1])
def test_fast_inference_path_matches_reference(monkeypatch, block):
    monkeypatch.setattr(aa, 'ROW_BLOCK_ELEMENTS', block)
    tensors, bias = _inputs()
    with torch.no_grad():
        ref = _run('reference', tensors, bias, (7, 10), (2, 3))
        fast = _run('fast', tensors, bias, (7, 10), (2, 3))
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_inputs(dtype):
    """Low-precision inputs are computed in float32 by both paths and agree; gradients are finite."""
    tensors, bias = _inputs(dtype=dtype)
    outs = []
    for impl in ('reference', 'fast'):
        out = _run(impl, tensors, bias, (7, 10), (2, 3))
        assert out.dtype == dtype
        out.float().sum().backward()
        outs.append(out.detach().float())
        assert all(torch.isfinite(v.grad.float()).all() for v in tensors.values())
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-2, atol=1e-2)
    with torch.no_grad():
        infer = _run('fast', tensors, bias, (7, 10), (2, 3)).float()
    torch.testing.assert_close(infer, outs[0], rtol=1e-2, atol=1e-2)


def test_padded_neighbours_get_no_weight():
    """A neighbour outside the map contributes nothing, even with a huge local bias."""
    tensors, bias = _inputs(size=(3, 3), pool=(1, 1))
    with torch.no_grad():
        tensors['local_bias'].fill_(50.0)
        tensors['learnable_tokens'].zero_()
        tensors['learnable_bias'].zero_()
        out = _run('fast', tensors, bias, (3, 3), (1, 1))
    assert torch.isfinite(out).all()


def _authors_style_bias(mlp_out_fn, query, key, pretrain, table, sr):
    """Readable oracle: full coordinate table -> MLP -> gather -> bilinear over keys, then queries."""
    tq = table or query[0]
    tk = (table // sr) if table else key[0]
    qs = (tq, tq) if table else query
    ks = (tk, tk) if table else key
    axes = []
    for a in range(2):
        qa = torch.arange(qs[a], dtype=torch.float32)
        ka = F.adaptive_avg_pool1d(qa[None], ks[a])[0]
        axes.append((qa, ka))
    qh, qw = torch.meshgrid(axes[0][0], axes[1][0], indexing='ij')
    kh, kw = torch.meshgrid(axes[0][1], axes[1][1], indexing='ij')
    rel = torch.stack([(qh.reshape(-1, 1) - kh.reshape(1, -1)) / (pretrain - 1) * 8,
                       (qw.reshape(-1, 1) - kw.reshape(1, -1)) / (pretrain - 1) * 8], -1)
    rel = torch.sign(rel) * torch.log2(rel.abs() + 1) / 3.0
    bias = mlp_out_fn(rel.view(-1, 2)).t().reshape(-1, qs[0] * qs[1], ks[0], ks[1])  # (h, Nq, kh, kw)
    if not table:
        return bias.reshape(bias.shape[0], -1, key[0] * key[1])
    heads = bias.shape[0]
    bias = F.interpolate(bias, key, mode='bilinear').reshape(heads, tq * tq, -1).transpose(1, 2)
    bias = F.interpolate(bias.reshape(heads, -1, tq, tq), query, mode='bilinear')
    return bias.reshape(heads, -1, query[0] * query[1]).transpose(1, 2)


@pytest.mark.parametrize('table', [None, 16])
@pytest.mark.parametrize('query,sr', [((9, 13), 2), ((20, 12), 4), ((6, 6), 1), ((16, 12), 4)])
def test_lazy_bias_matches_full_table_interpolation(table, query, sr):
    torch.manual_seed(0)
    fc1, fc2 = torch.nn.Linear(2, 512), torch.nn.Linear(512, 3)
    key = (query[0] // sr, query[1] // sr)
    geometry = bias_geometry(query, key, 14, table, sr, torch.device('cpu'))
    with torch.no_grad():
        lazy = PoolBias(evaluate_cpb(fc1, fc2, geometry), geometry)
        ours = lazy.full()
        ref = _authors_style_bias(lambda t: fc2(F.relu(fc1(t))), query, key, 14, table, sr)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
        rows = torch.cat([lazy(r, r + 1) for r in range(query[0])], dim=1)  # (h, H, W, kh, kw)
        torch.testing.assert_close(rows.reshape(ours.shape), ours)


def test_axis_at_table_size_reads_one_tap():
    """An axis whose query and key lengths equal the table's (e.g. TransNeXt at its ``img_size``) is an
    identity resize: its zero-weight taps are dropped, the other axis keeps its four."""
    geometry = bias_geometry((16, 12), (4, 3), 14, 16, 4, torch.device('cpu'))
    assert geometry.taps_h.index.shape == (16, 4, 1) and bool((geometry.taps_h.weight == 1).all())
    assert geometry.taps_w.index.shape == (12, 3, 4)
    assert geometry.taps_h.offsets.tolist() == list(range(16 * 4))
