"""ONNX export of a backbone with dynamic batch, height and width, and an onnxruntime parity check.

Two exporters of torch 2.13, chosen per family (:data:`EXPORTERS`, override with ``exporter=``):

* ``'dynamo'``: ``torch.onnx.export(..., dynamo=True)`` (``torch.export`` with symbolic sizes, then
  onnxscript) keeps the size arithmetic of padding, windows and pyramids in the graph; any Python
  branch on a size must be removed (see ``models/layers/tracing.py``) or the export fails, naming it.
* ``'torchscript'``: ``dynamo=False`` traces once and records sizes as graph values; fast, but it
  freezes the sizes of maps that ONNX shape inference cannot follow (after a padding of dynamic
  amount, in Twins and XCiT) into constants, so only families whose graphs it gets right use it.

Either way :func:`onnx_parity` (run by ``tools/export_onnx.py``) checks the file at other sizes.
Needs ``pip install "mmvit_backbones[export]"`` (``onnx``, ``onnxscript``, ``onnxruntime``).
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

Size = Tuple[int, int]
DEFAULT_OPSET = 18  # the dynamo exporter's native opset (>= 17 as required by LayerNorm)
# the exporter whose graphs pass the parity check at other sizes, per family (tests/test_export.py);
# GC ViT: torch.export cannot yet prove its window reshapes for every size (divisibility guards)
EXPORTERS = {'GCViT': 'torchscript'}


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f'ONNX export needs {module!r}: pip install "mmvit_backbones[export]" '
                          f'(onnx, onnxscript, onnxruntime)') from e


def output_names(model: nn.Module) -> List[str]:
    """``feat0..featK``: one name per entry of ``model.out_indices`` (stage index in the name)."""
    return [f'feat{i}' for i in model.out_indices]


def export_onnx(model: nn.Module, path: str, shape: Size = (224, 224), batch: int = 2,
                opset: int = DEFAULT_OPSET, max_side: int = 4096, exporter: Optional[str] = None) -> str:
    """Export ``model`` (eval mode, float32) to ``path`` with dynamic batch, H and W.

    ``shape``/``batch`` are the example input's; the batch must be >= 2 (``torch.export`` specialises
    a size-1 dimension). The graph accepts any batch and any ``32 <= H, W <= max_side``.
    ``exporter``: ``'dynamo'`` or ``'torchscript'`` (default: the family's entry in :data:`EXPORTERS`,
    else ``'dynamo'``).
    """
    exporter = exporter or EXPORTERS.get(type(model).__name__, 'dynamo')
    if exporter not in ('dynamo', 'torchscript'):
        raise ValueError(f"exporter {exporter!r}: expected 'dynamo' or 'torchscript'")
    _require('onnx')
    if exporter == 'dynamo':
        _require('onnxscript')
    if batch < 2:
        raise ValueError(f'export batch {batch}: the example batch must be >= 2 so that the batch stays dynamic')
    # a family whose graph changes below some size (CrossFormer's small-map grouping) says so
    min_side = getattr(model, 'export_min_input_size', getattr(model, 'min_input_size', 32))
    if min(shape) < min_side or max(shape) > max_side:
        raise ValueError(f'export shape {tuple(shape)} out of range; expected sides in [{min_side}, {max_side}]')
    model = model.eval()
    x = torch.randn(batch, getattr(model, 'in_channels', 3), *shape)
    dims = {0: torch.export.Dim('batch', min=1, max=1024), 2: torch.export.Dim('height', min=min_side, max=max_side),
            3: torch.export.Dim('width', min=min_side, max=max_side)}
    names = output_names(model)
    with torch.no_grad():
        if exporter == 'dynamo':
            torch.onnx.export(model, (x, ), path, input_names=['input'], output_names=names, opset_version=opset,
                              dynamo=True, dynamic_shapes={'x': dims}, external_data=False, verbose=False)
        else:
            axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
            axes.update({name: {0: 'batch', 2: f'{name}_h', 3: f'{name}_w'} for name in names})
            with warnings.catch_warnings():  # tracer warnings about sizes: the parity check is the judge
                warnings.simplefilter('ignore')
                torch.onnx.export(model, (x, ), path, input_names=['input'], output_names=names,
                                  opset_version=opset, dynamo=False, dynamic_axes=axes)
    if not osp.isfile(path):
        raise RuntimeError(f'torch.onnx.export wrote no file at {path}')
    return path


def onnx_parity(model: nn.Module, path: str, sizes: Sequence[Size], batch: int = 1,
                seed: int = 0) -> List[Dict[str, object]]:
    """Run the ONNX file with onnxruntime (CPU) and the model in PyTorch on random inputs of each size.

    Returns one row per size: ``size``, ``batch`` and ``max_rel_error``, the largest over outputs of
    ``max|onnx - torch| / max|torch|``; a shape mismatch raises.
    """
    ort = _require('onnxruntime')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    generator = torch.Generator().manual_seed(seed)
    model = model.eval()
    rows = []
    for h, w in sizes:
        x = torch.randn(batch, getattr(model, 'in_channels', 3), h, w, generator=generator)
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {input_name: x.numpy()})
        if len(got) != len(expected):
            raise AssertionError(f'ONNX model returned {len(got)} outputs at {h}x{w}, PyTorch {len(expected)}')
        worst = 0.0
        for name, out, ref in zip(output_names(model), got, expected):
            if tuple(out.shape) != tuple(ref.shape):
                raise AssertionError(f'ONNX output {name} has shape {tuple(out.shape)} at input {h}x{w}, '
                                     f'PyTorch {tuple(ref.shape)}')
            err = (torch.from_numpy(out) - ref).abs().max() / ref.abs().max().clamp_min(1e-12)
            worst = max(worst, float(err))
        rows.append(dict(size=f'{h}x{w}', batch=batch, max_rel_error=worst))
    return rows


def default_check_sizes(shape: Size) -> List[Size]:
    """Two sizes other than the export size: one larger and a multiple of 32, one not divisible by 32."""
    h, w = shape
    return [(h + 64, w + 32), (h - 27 if h - 27 >= 32 else h + 27, w + 5)]


def build_backbone(spec: str, checkpoint: Optional[str] = None, **kwargs) -> nn.Module:
    """``'TYPE:ARCH'`` -> the registered backbone, weights loaded if given. ``ARCH`` is an arch name
    (``'TransNeXt:tiny'``) or a JSON dict (``'XCiT:{"embed_dims": 32, "depth": 4, ...}'``)."""
    from mmengine.registry import MODELS

    import mmvit_backbones  # noqa: F401  (registers the backbones)
    if ':' not in spec:
        raise ValueError(f'backbone {spec!r}: expected TYPE:ARCH, e.g. TransNeXt:tiny')
    type_name, arch = spec.split(':', 1)
    if arch.lstrip().startswith('{'):
        import json
        try:
            arch = json.loads(arch)
        except json.JSONDecodeError as e:
            raise ValueError(f'backbone {spec!r}: the arch is not valid JSON ({e})') from e
    if MODELS.get(type_name) is None:
        raise ValueError(f'backbone type {type_name!r} is not registered; expected one of '
                         'GCViT, TwinsPCPVT, TwinsSVT, CrossFormer, XCiT, TransNeXt')
    cfg = dict(type=type_name, arch=arch, **kwargs)
    if checkpoint:
        cfg['init_cfg'] = dict(type='Pretrained', checkpoint=checkpoint)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()
