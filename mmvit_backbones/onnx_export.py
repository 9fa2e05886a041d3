"""ONNX export with dynamic batch, height and width (``pip install "mmvit_backbones[export]"``), and a parity check.

Exporters, per backbone (``onnx_exporter``): ``'dynamo'`` (:func:`capture`, then ``torch.onnx.export``: the graph
keeps the size arithmetic; a Python branch on a size fails the export) or ``'torchscript'`` (traces once; it freezes
the sizes of maps ONNX shape inference cannot follow, as after Twins' and XCiT's paddings). The graph serves sides in
``[export_min_input_size, max_side]``, states them in its metadata and refuses other sizes.
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from . import compat
from .utils.tracing import is_tracing

Size = Tuple[int, int]
ONNX_MIN_TORCH = (2, 5)  # torch.onnx.export(dynamo=True/False) and torch.compiler.is_exporting
DEFAULT_OPSET = 18  # the dynamo exporter's native opset (>= 17 as required by LayerNorm)


class SizeGuard(nn.Module):
    """``backbone(x)`` for ``min_side <= H, W <= max_side``, an error otherwise: eagerly a ValueError; in a graph an
    out-of-bounds gather that onnxruntime refuses (a one-element table indexed by ``H or W out of range``), whose
    result, an exact zero, is added to the input so that the check cannot be pruned."""

    def __init__(self, backbone: nn.Module, min_side: int, max_side: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.min_side, self.max_side = min_side, max_side

    def forward(self, x: torch.Tensor):
        if not is_tracing():
            if not (self.min_side <= min(x.shape[2:]) and max(x.shape[2:]) <= self.max_side):
                raise ValueError(f'input size {tuple(x.shape[2:])} is outside the exported range '
                                 f'[{self.min_side}, {self.max_side}]')
            return self.backbone(x)
        h = torch.ones_like(x[:1, :1, :, :1]).sum()  # H and W as graph values, from the input's shape
        w = torch.ones_like(x[:1, :1, :1, :]).sum()
        bad = (h < self.min_side) | (h > self.max_side) | (w < self.min_side) | (w > self.max_side)
        guard = x.new_zeros(1)[bad.long().reshape(1)]  # index 1 of a 1-element table: an error
        return self.backbone(x + guard.reshape(1, 1, 1, 1))


def default_export_shape(model: nn.Module) -> Size:
    """224x224, or the next multiple of 32 from the backbone's ``export_example_min_size`` (256 for TwinsSVT and
    CrossFormer, whose every stage must span two windows in the example)."""
    side = max(224, (model.export_example_min_size + 31) // 32 * 32)
    return side, side


def capture(model: nn.Module, x: torch.Tensor, dims: Dict[int, object]) -> 'torch.export.ExportedProgram':
    """``torch.export`` with symbolic batch/H/W as ``torch.onnx.export(dynamo=True)`` does, but with the guards the
    solver cannot prove (``h <= 7 * ceil(h / 7)`` for Twins-SVT's padded windows) deferred to runtime assertions,
    which the ONNX graph drops. A lower bound it suggests (``H >= 33``) is accepted; a specialisation is an error."""
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


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f'ONNX export needs {module!r}: pip install "mmvit_backbones[export]" '
                          f'(onnx, onnxscript, onnxruntime)') from e


def export_onnx(model: nn.Module, path: str, shape: Optional[Size] = None, batch: int = 2,
                opset: int = DEFAULT_OPSET, max_side: int = 4096, exporter: Optional[str] = None) -> str:
    """Export ``model`` (eval mode, float32) to ``path``; the graph takes any batch and any side in
    ``[export_min_input_size, max_side]``. The example input (``shape``, default :func:`default_export_shape`;
    ``batch`` >= 2) has sides >= ``export_example_min_size``: ``torch.export`` specialises a size that is 1 in
    the example. ``exporter``: ``'dynamo'`` or ``'torchscript'`` (default: the backbone's ``onnx_exporter``)."""
    compat.require_torch(ONNX_MIN_TORCH, 'ONNX export (torch.onnx.export(dynamo=...), torch.export.Dim)')
    exporter = exporter or model.onnx_exporter
    if exporter not in ('dynamo', 'torchscript'):
        raise ValueError(f"exporter {exporter!r}: expected 'dynamo' or 'torchscript'")
    onnx = _require('onnx')
    if exporter == 'dynamo':
        _require('onnxscript')
    if batch < 2:
        raise ValueError(f'export batch {batch}: the example batch must be >= 2 so that the batch stays dynamic')
    min_side = model.export_min_input_size
    shape = tuple(shape) if shape is not None else default_export_shape(model)
    example_min = model.export_example_min_size
    if min(shape) < example_min or max(shape) > max_side:
        why = '' if example_min == min_side else (f' (the graph takes sides >= {min_side}, but an example side below '
                                                   f'{example_min} gives a stage map of one window, which '
                                                   f'torch.export would fix)')
        raise ValueError(f'export shape {shape} out of range; expected sides in [{example_min}, {max_side}]{why}')
    x = torch.randn(batch, model.in_channels, *shape)
    dims = {0: torch.export.Dim('batch', min=1, max=1024), 2: torch.export.Dim('height', min=min_side, max=max_side),
            3: torch.export.Dim('width', min=min_side, max=max_side)}
    names = [f'feat{i}' for i in model.out_indices]  # the stage index in the name
    guarded = SizeGuard(model, min_side, max_side).eval()  # the backbone too
    with torch.no_grad():
        if exporter == 'dynamo':
            torch.onnx.export(capture(guarded, x, dims), (x, ), path, input_names=['input'], output_names=names,
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        else:
            axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
            axes.update({name: {0: 'batch', 2: f'{name}_h', 3: f'{name}_w'} for name in names})
            with warnings.catch_warnings():  # tracer warnings about sizes: the parity check is the judge
                warnings.simplefilter('ignore')
                torch.onnx.export(guarded, (x, ), path, input_names=['input'], output_names=names,
                                  opset_version=opset, dynamo=False, dynamic_axes=axes)
    proto = onnx.load(path)  # check that no exporter fell back to fixed input sizes; label the size range
    input_dims = proto.graph.input[0].type.tensor_type.shape.dim
    fixed = [i for i in (0, 2, 3) if not input_dims[i].dim_param]
    if fixed:
        raise RuntimeError(f'the {exporter} exporter wrote {path} with fixed input dims {fixed} '
                           f'({[d.dim_value for d in input_dims]}); expected dynamic batch, H and W')
    for key, value in (('mmvit.min_input_size', min_side), ('mmvit.max_input_size', max_side)):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)
    return path


def exported_size_range(path: str) -> Size:
    """``(min_side, max_side)`` that the file at ``path`` computes the backbone's function for."""
    import onnx
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return int(meta['mmvit.min_input_size']), int(meta['mmvit.max_input_size'])


def onnx_parity(model: nn.Module, path: str, sizes: Sequence[Size], batch: int = 1,
                seed: int = 0) -> List[Dict[str, object]]:
    """Run the file (onnxruntime, CPU) and the model on random inputs of each size: one row per size with
    ``size``, ``batch``, ``refused`` and ``max_rel_error`` (over outputs, ``max|onnx - torch| / max|torch|``). A size
    outside the file's range must be refused; a shape mismatch, or such a size that runs, raises."""
    ort = _require('onnxruntime')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    min_side, max_side = exported_size_range(path)
    generator = torch.Generator().manual_seed(seed)
    model = model.eval()
    rows = []
    for h, w in sizes:
        x = torch.randn(batch, model.in_channels, h, w, generator=generator)
        if not (min_side <= min(h, w) and max(h, w) <= max_side):
            try:
                session.run(None, {input_name: x.numpy()})
            except Exception:  # onnxruntime's errors have no common public class
                rows.append(dict(size=f'{h}x{w}', batch=batch, refused=True, max_rel_error=None))
                continue
            raise AssertionError(f'{path} ran at {h}x{w}, outside its range [{min_side}, {max_side}]')
        with torch.no_grad():
            expected = model(x)
        got = session.run(None, {input_name: x.numpy()})
        if len(got) != len(expected):
            raise AssertionError(f'ONNX model returned {len(got)} outputs at {h}x{w}, PyTorch {len(expected)}')
        worst = 0.0
        for index, out, ref in zip(model.out_indices, got, expected):
            if tuple(out.shape) != tuple(ref.shape):
                raise AssertionError(f'ONNX output feat{index} has shape {tuple(out.shape)} at input {h}x{w}, '
                                     f'PyTorch {tuple(ref.shape)}')
            err = (torch.from_numpy(out) - ref).abs().max() / ref.abs().max().clamp_min(1e-12)
            worst = max(worst, float(err))
        rows.append(dict(size=f'{h}x{w}', batch=batch, refused=False, max_rel_error=worst))
    return rows


def default_check_sizes(shape: Size) -> List[Size]:
    """Two sizes other than the export size: one larger and a multiple of 32, one not divisible by 32."""
    h, w = shape
    return [(h + 64, w + 32), (h - 27 if h - 27 >= 32 else h + 27, w + 5)]

