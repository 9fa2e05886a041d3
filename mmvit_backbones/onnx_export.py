"""ONNX export of a backbone with dynamic batch, height and width, and an onnxruntime parity check.

Two exporters of torch 2.13, chosen per family (:data:`EXPORTERS`, override with ``exporter=``):

* ``'dynamo'``: ``torch.export`` with symbolic sizes (:func:`capture`), then ``torch.onnx.export``
  (onnxscript) keeps the size arithmetic of padding, windows and pyramids in the graph; any Python
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


def example_min_side(model: nn.Module) -> int:
    """Smallest side of an example input from which one graph for every size can be recorded.

    ``torch.export`` specialises a size that is 1 in the example, so every stage of a windowed family
    must span at least two windows: for Twins-SVT ``ceil(H / s_i) > window_i`` at every stage (225 for
    7x7 windows). CrossFormer's graph only holds from its ``export_min_input_size`` on. The graph itself
    then takes smaller inputs too (down to the model's minimum, except CrossFormer).
    """
    side = getattr(model, 'export_min_input_size', getattr(model, 'min_input_size', 32))
    windows = getattr(model, 'arch_settings', {}).get('window_sizes') if hasattr(model, 'patch_strides') else None
    if windows:  # TwinsSVT: LSA windows per stage
        stride = 1
        for s, ws in zip(model.patch_strides, windows):
            stride *= s
            side = max(side, stride * ws + 1)
    return side


def default_export_shape(model: nn.Module) -> Size:
    """224x224, or the next multiple of 32 above :func:`example_min_side` (256 for TwinsSVT, CrossFormer)."""
    side = max(224, (example_min_side(model) + 31) // 32 * 32)
    return side, side


def capture(model: nn.Module, x: torch.Tensor, dims: Dict[int, object]) -> 'torch.export.ExportedProgram':
    """``torch.export`` of ``model`` with symbolic batch/H/W, as ``torch.onnx.export(dynamo=True)`` does but
    with guards it cannot prove deferred to runtime assertions (which the ONNX graph drops).

    Windowed families (Twins-SVT) reshape ``ceil(h / 7) * 7`` rows into windows and crop back to ``h``;
    the symbolic solver cannot prove facts such as ``h <= 7 * ceil(h / 7)`` or ``k % (7 k) != 0`` and would
    otherwise reject (or, inside ``torch.onnx.export``, silently specialise) the sizes. A lower bound
    that the solver suggests (e.g. ``H >= 33``: a stage-4 map of more than one token) is accepted;
    a specialisation is an error. The parity check is the judge either way.
    """
    import torch.fx.experimental._config as fx_config
    from torch.export.dynamic_shapes import refine_dynamic_shapes_from_suggested_fixes

    shapes = {'x': dims}
    kwargs = dict(strict=False, prefer_deferred_runtime_asserts_over_guards=True)
    with fx_config.patch(backed_size_oblivious=True):  # as torch.onnx: no 0/1 specialisation of the batch
        try:
            return torch.export.export(model, (x, ), dynamic_shapes=shapes, **kwargs)
        except torch._dynamo.exc.UserError as e:
            refined = refine_dynamic_shapes_from_suggested_fixes(e.msg, shapes)
            if any(not isinstance(refined['x'].get(i), torch.export.Dim) for i in dims):
                raise RuntimeError(f'torch.export of {type(model).__name__} specialises the input sizes '
                                   f'{tuple(x.shape)} (a Python branch or loop on a size); expected a graph for '
                                   f'every size:\n{e.msg}') from e
            return torch.export.export(model, (x, ), dynamic_shapes=refined, **kwargs)


def _check_dynamic_input(path: str, exporter: str) -> None:
    """The written graph's input has symbolic batch, H and W (no exporter fell back to fixed sizes)."""
    import onnx
    dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    fixed = [i for i in (0, 2, 3) if not dims[i].dim_param]
    if fixed:
        raise RuntimeError(f'the {exporter} exporter wrote {path} with fixed input dims {fixed} '
                           f'({[d.dim_value for d in dims]}); expected dynamic batch, H and W')


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f'ONNX export needs {module!r}: pip install "mmvit_backbones[export]" '
                          f'(onnx, onnxscript, onnxruntime)') from e


def output_names(model: nn.Module) -> List[str]:
    """``feat0..featK``: one name per entry of ``model.out_indices`` (stage index in the name)."""
    return [f'feat{i}' for i in model.out_indices]


def export_onnx(model: nn.Module, path: str, shape: Optional[Size] = None, batch: int = 2,
                opset: int = DEFAULT_OPSET, max_side: int = 4096, exporter: Optional[str] = None) -> str:
    """Export ``model`` (eval mode, float32) to ``path`` with dynamic batch, H and W.

    ``shape``/``batch`` are the example input's (default :func:`default_export_shape`); the batch must be
    >= 2 and the sides >= :func:`example_min_side` (``torch.export`` specialises a size that is 1 in the
    example). The graph accepts any batch and any ``32 <= H, W <= max_side`` (CrossFormer: from
    ``export_min_input_size``).
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
    shape = tuple(shape) if shape is not None else default_export_shape(model)
    example_min = example_min_side(model)
    if min(shape) < example_min or max(shape) > max_side:
        why = '' if example_min == min_side else (f' (the graph takes sides >= {min_side}, but an example side below '
                                                   f'{example_min} gives a stage map of one window, which '
                                                   f'torch.export would fix)')
        raise ValueError(f'export shape {shape} out of range; expected sides in [{example_min}, {max_side}]{why}')
    model = model.eval()
    x = torch.randn(batch, getattr(model, 'in_channels', 3), *shape)
    dims = {0: torch.export.Dim('batch', min=1, max=1024), 2: torch.export.Dim('height', min=min_side, max=max_side),
            3: torch.export.Dim('width', min=min_side, max=max_side)}
    names = output_names(model)
    with torch.no_grad():
        if exporter == 'dynamo':
            torch.onnx.export(capture(model, x, dims), (x, ), path, input_names=['input'], output_names=names,
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        else:
            axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
            axes.update({name: {0: 'batch', 2: f'{name}_h', 3: f'{name}_w'} for name in names})
            with warnings.catch_warnings():  # tracer warnings about sizes: the parity check is the judge
                warnings.simplefilter('ignore')
                torch.onnx.export(model, (x, ), path, input_names=['input'], output_names=names,
                                  opset_version=opset, dynamo=False, dynamic_axes=axes)
    if not osp.isfile(path):
        raise RuntimeError(f'torch.onnx.export wrote no file at {path}')
    _check_dynamic_input(path, exporter)
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
