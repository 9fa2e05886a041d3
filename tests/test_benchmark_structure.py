"""Structure of the inference forward that the speed figures rely on (docs/benchmarks.md), checked by
what runs, not by timing.

* Shape-only work is cached per input size: a second eval forward at the same size builds no index,
  mask or offset table. The recorder counts every operator that creates a non-empty integer or bool
  tensor from no floating-point data (``arange``, ``zeros(dtype=bool)``, comparisons and bitwise ops
  on such tables, ``unique`` of offsets...), views excluded. The first forward must build some in the
  families that have such tables (so the recorder sees them), the second none, in every family.
* TransNeXt's position-bias MLP (the ``cpb_fc1``/``cpb_fc2`` layers) runs once per size and weights,
  not once per forward.
* The fused oneDNN linears (``models/layers/linear.py``) are taken in CPU inference and step aside
  under autograd.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch.utils._python_dispatch import TorchDispatchMode

import mmvit_backbones  # noqa: F401
from backbone_checks import TINY_ARCHS
from mmvit_backbones.models.layers import linear as fast_linear

SIZE = (75, 101)  # needs padding in every family (windows, groups, strides)
# families whose forward at SIZE needs size-dependent tables (masks, bias taps, index tables)
BUILDS_TABLES = ('TwinsSVT', 'CrossFormer', 'TransNeXt')


def _floating(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype.is_floating_point


class TableRecorder(TorchDispatchMode):
    """Records operators that create integer/bool tensors from sizes alone."""

    def __init__(self) -> None:
        super().__init__()
        self.created = []
        self.inside_sdpa = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.is_view or self.inside_sdpa:
            return out  # torch < 2.3 runs SDPA's math path as visible operators (a bool mask's logical_not)
        inputs = [a for a in torch.utils._pytree.tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        if any(_floating(t) for t in inputs):
            return out  # derived from data (pooling indices, embedding_bag's bookkeeping)
        outs = out if isinstance(out, (tuple, list)) else [out]
        for t in outs:
            if isinstance(t, torch.Tensor) and not t.dtype.is_floating_point and t.numel() > 0:
                self.created.append(str(func))
        return out


def _record(model, x):
    recorder = TableRecorder()
    sdpa = F.scaled_dot_product_attention

    def marked_sdpa(*args, **kwargs):  # what torch itself does inside SDPA is not this package's table
        recorder.inside_sdpa = True
        try:
            return sdpa(*args, **kwargs)
        finally:
            recorder.inside_sdpa = False

    F.scaled_dot_product_attention = marked_sdpa
    try:
        with torch.no_grad(), recorder:
            model(x)
    finally:
        F.scaled_dot_product_attention = sdpa
    return recorder.created


@pytest.mark.parametrize('type_name', sorted(TINY_ARCHS))
def test_second_forward_builds_no_shape_tables(type_name):
    model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name])).eval()
    x = torch.randn(2, 3, *SIZE)
    first = _record(model, x)
    second = _record(model, x)
    if type_name in BUILDS_TABLES:
        assert first, f'{type_name}: the recorder saw no table being built at {SIZE}'
    assert not second, f'{type_name}: the second forward at {SIZE} rebuilt shape-only tensors: {sorted(set(second))}'
    # another size builds its own tables once, and the first size's stay cached
    _record(model, torch.randn(1, 3, 64, 64))
    assert not _record(model, x), f'{type_name}: switching sizes dropped the cached tables of {SIZE}'


def test_transnext_position_bias_mlp_runs_once_per_size():
    model = MODELS.build(dict(type='TransNeXt', arch=TINY_ARCHS['TransNeXt'])).eval()
    calls = []
    for module in model.modules():
        if hasattr(module, 'cpb_fc1'):
            module.cpb_fc1.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        model(x)
        first = len(calls)
        model(x)
    assert first > 0 and len(calls) == first, (first, len(calls))
    with torch.no_grad():  # changed weights (an in-place update, as an optimizer step): recomputed
        for module in model.modules():
            if hasattr(module, 'cpb_fc1'):
                module.cpb_fc1.weight.mul_(1.0)
        model(x)
    assert len(calls) == 2 * first


def test_fused_linear_only_in_cpu_inference(monkeypatch):
    if not fast_linear._ONEDNN_AVAILABLE:
        pytest.skip('this torch has no oneDNN linear')
    calls = []
    real = fast_linear._ONEDNN_LINEAR
    monkeypatch.setattr(fast_linear, '_ONEDNN_LINEAR', lambda *a: calls.append(a[3]) or real(*a))
    layer = fast_linear.Linear(16, 8)
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        fused = layer(x)
        gelu = fast_linear.linear(x, layer, gelu=True)
    assert calls == ['none', 'gelu']
    plain = torch.nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gelu, torch.nn.functional.gelu(plain), rtol=1e-5, atol=1e-6)
    out = layer(x.requires_grad_())  # autograd: the plain path, differentiable
    out.sum().backward()
    assert calls == ['none', 'gelu'] and x.grad is not None
    with torch.no_grad():
        layer.double()(x.double().detach())  # float64: the plain path
    assert calls == ['none', 'gelu']
