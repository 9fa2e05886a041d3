"""ONNX export with dynamic batch, H and W: onnxruntime (CPU) reproduces the PyTorch features at two
sizes other than the export size (one not divisible by 32), and the CLI works.

Reduced-depth archs keep the export fast; every kind of block of a family is kept (GC ViT local and
global windows, SVT LSA and GSA, CrossFormer SDA and LDA, TransNeXt aggregated and full attention).
"""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS

pytest.importorskip('onnxruntime', reason='the export extra (pip install "mmvit_backbones[export]") is not installed')
pytest.importorskip('onnxscript', reason='the export extra (pip install "mmvit_backbones[export]") is not installed')

from mmvit_backbones.onnx_export import (default_check_sizes, default_export_shape, export_onnx,  # noqa: E402
                                         exported_size_range, onnx_parity)
from backbone_checks import TINY_ARCHS  # noqa: E402
from mmvit_backbones import compat  # noqa: E402
from mmvit_backbones.onnx_export import ONNX_MIN_TORCH  # noqa: E402

pytestmark = pytest.mark.skipif(compat.torch_version() < ONNX_MIN_TORCH, reason=(
    f'ONNX export needs torch >= {ONNX_MIN_TORCH[0]}.{ONNX_MIN_TORCH[1]} (torch.onnx.export(dynamo=...)); '
    f'this is torch {torch.__version__} (tests/test_compat.py checks the error it raises)'))

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOL = 1e-4
ARCHS = TINY_ARCHS


EXPORTABLE = ['GCViT', 'TwinsPCPVT', 'TwinsSVT', 'CrossFormer', 'XCiT', 'TransNeXt']


# Sizes on both sides of every branch point of the tiny archs: stage maps smaller than a window/group
# (CrossFormer's 7x7 groups at stride 32: 224 and below), maps of one window, odd and non-square sizes.
SWEEP = [(32, 32), (33, 47), (96, 96), (100, 131), (160, 224), (200, 136), (224, 224), (225, 226), (231, 257),
         (256, 352), (321, 243)]


@pytest.mark.slow
@pytest.mark.parametrize('type_name', EXPORTABLE)
def test_onnx_dynamic_shapes_match_pytorch(type_name, tmp_path):
    """The exported graph computes the backbone's function at every size it accepts and refuses the others."""
    model = MODELS.build(dict(type=type_name, arch=ARCHS[type_name])).eval()
    model.init_weights()
    shape = default_export_shape(model)  # 224; 256 where a stage map must span two windows (SVT, CrossFormer)
    path = export_onnx(model, str(tmp_path / f'{type_name}.onnx'), shape)
    low, high = exported_size_range(path)
    assert (low, high) == (model.export_min_input_size, 4096)
    sizes = default_check_sizes(shape) + SWEEP
    rows = onnx_parity(model, path, sizes, batch=1) + onnx_parity(model, path, sizes[:1], batch=3)
    for row in rows:
        h, w = map(int, row['size'].split('x'))
        assert row['refused'] == (min(h, w) < low), row
        assert row['refused'] or row['max_rel_error'] <= TOL, f"{type_name} at {row['size']} (batch {row['batch']}): {row}"
    assert sum(not row['refused'] for row in rows) >= 4


@pytest.mark.slow
def test_export_onnx_cli(tmp_path):
    out = str(tmp_path / 'gcvit.onnx')
    spec = 'GCViT:' + json.dumps(ARCHS['GCViT'])
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools/export_onnx.py'), spec, '--out', out,
                           '--shape', '64', '96', '--check', '96x64', '75x101', '--out-indices', '1', '3'],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'onnxruntime vs PyTorch at 75x101' in proc.stdout
    import onnx
    graph = onnx.load(out).graph
    assert [o.name for o in graph.output] == ['feat1', 'feat3']
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != '' for d in dims] == [True, False, True, True]  # B, H, W dynamic; C fixed


def test_export_rejects_bad_arguments(tmp_path):
    model = MODELS.build(dict(type='TwinsPCPVT', arch=ARCHS['TwinsPCPVT']))
    with pytest.raises(ValueError, match='batch'):
        export_onnx(model, str(tmp_path / 'x.onnx'), (64, 64), batch=1)
    cross = MODELS.build(dict(type='CrossFormer', arch=ARCHS['CrossFormer']))
    with pytest.raises(ValueError, match=r'\[225, 4096\]'):  # smaller maps use another grouping
        export_onnx(cross, str(tmp_path / 'y.onnx'), (224, 224))
    svt = MODELS.build(dict(type='TwinsSVT', arch=ARCHS['TwinsSVT']))
    with pytest.raises(ValueError, match=r'\[225, 4096\].*one window'):  # 224: the last stage is one 7x7 window
        export_onnx(svt, str(tmp_path / 's.onnx'), (224, 224))
    with pytest.raises(ValueError, match='exporter'):
        export_onnx(model, str(tmp_path / 'z.onnx'), (64, 64), exporter='onnxscript')
    extrapolate = MODELS.build(dict(type='TransNeXt', arch=ARCHS['TransNeXt'], pos_bias_mode='extrapolate'))
    with pytest.raises(NotImplementedError, match="pos_bias_mode='extrapolate' does not export"):
        export_onnx(extrapolate, str(tmp_path / 't.onnx'))
    torch.manual_seed(0)
