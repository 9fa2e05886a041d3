"""The export-friendly forms of TransNeXt's pooled-path pieces (ops/export_helpers.py) equal the eager
operators at sizes that divide and that do not (also log_cpb.traced_axis_taps, the export form of the
interpolated bias taps), and the pooling exports to ONNX with dynamic H, W."""
import pytest
import torch
import torch.export  # noqa: F401  (a submodule: not imported by torch itself on torch 2.1)
import torch.nn.functional as F
from torch import nn

from mmvit_backbones.ops.export_helpers import (adaptive_avg_pool2d_matmul, linear_taps_closed_form,
                                                weighted_gather)
from mmvit_backbones.ops.log_cpb import axis_taps, linear_taps, traced_axis_taps

SIZES = [(7, 7), (14, 9), (25, 8), (13, 1), (56, 7), (3, 3)]  # (in, out)


def dense(index, weight, in_len):
    """``(out, in)`` matrix of a tap list."""
    out = torch.zeros(index.shape[0], in_len)
    return out.scatter_add_(1, index.long(), weight.float())


@pytest.mark.parametrize('in_len,out_len', SIZES)
def test_pool_and_taps_match_eager(in_len, out_len):
    x = torch.randn(2, 3, in_len, in_len + 5)
    ref = F.adaptive_avg_pool2d(x, (out_len, out_len + 1))
    torch.testing.assert_close(adaptive_avg_pool2d_matmul(x, (out_len, out_len + 1)), ref, rtol=1e-6, atol=1e-6)
    for a, b in ((in_len, out_len), (out_len, in_len)):  # down- and up-sampling
        torch.testing.assert_close(dense(*linear_taps_closed_form(a, b), a), dense(*linear_taps(a, b), a),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('query_len,key_len,table_len,pretrain_len', [(56, 7, 200, 56), (25, 3, 100, 28),
                                                                      (13, 1, 50, 14), (7, 7, 25, 7)])
def test_traced_axis_taps_match_eager(query_len, key_len, table_len, pretrain_len):
    """The export form of the interpolated taps (NumPy unique offsets, closed-form taps) resizes a bias
    table as the eager form does."""
    ref = axis_taps(query_len, key_len, pretrain_len, table_len, table_len // 8)
    got = traced_axis_taps(query_len, key_len, pretrain_len, table_len, table_len // 8)
    torch.testing.assert_close(got.values, ref.values, rtol=1e-6, atol=1e-7)
    table = torch.randn(ref.values.numel(), 3, dtype=torch.float64)

    def resized(t):
        return (table[t.index] * t.weight.double()[..., None]).sum(-2)

    torch.testing.assert_close(resized(got), resized(ref), rtol=1e-6, atol=1e-6)


def test_weighted_gather_matches_embedding_bag():
    g = torch.Generator().manual_seed(0)
    table, index = torch.randn(11, 6, generator=g), torch.randint(0, 11, (20, 4), generator=g)
    weight = torch.rand(20, 4, generator=g)
    ref = F.embedding_bag(index, table, per_sample_weights=weight, mode='sum')
    torch.testing.assert_close(weighted_gather(index, table, weight), ref)


class Pool(nn.Module):
    def forward(self, x):
        return adaptive_avg_pool2d_matmul(x, (x.shape[2] // 8, x.shape[3] // 8))


@pytest.mark.skipif(not hasattr(torch.export, 'Dim'), reason='torch.export.Dim (dynamic shapes) needs a newer torch '
                    'than this one (ONNX export needs torch >= 2.5)')
def test_pool_exports_with_dynamic_sizes(tmp_path):
    ort = pytest.importorskip('onnxruntime', reason='the export extra is not installed')
    pytest.importorskip('onnxscript', reason='the export extra is not installed')
    from mmvit_backbones.onnx_export import capture
    x = torch.randn(2, 4, 64, 72)
    dims = {0: torch.export.Dim('batch', min=1, max=64), 2: torch.export.Dim('height', min=8, max=512),
            3: torch.export.Dim('width', min=8, max=512)}
    path = str(tmp_path / 'pool.onnx')
    torch.onnx.export(capture(Pool(), x, dims), (x, ), path, input_names=['input'], dynamo=True,
                      external_data=False, verbose=False)
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    for h, w in ((56, 56), (100, 131), (9, 15)):
        y = torch.randn(1, 4, h, w)
        got = torch.from_numpy(session.run(None, {'input': y.numpy()})[0])
        torch.testing.assert_close(got, F.adaptive_avg_pool2d(y, (h // 8, w // 8)), rtol=1e-5, atol=1e-5)
