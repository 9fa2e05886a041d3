"""FLOPs of backbones and whole models through :class:`mmengine.analysis.FlopAnalyzer`.

"FLOPs" here are multiply-accumulates (MACs), the unit the papers of all five families call "GFLOPs". The
analyzer traces the model with ``torch.jit`` and counts each aten op with a handle; this module adds handles for
what mmengine does not count and defines the counting *rules*:

* ``'all'``: every MAC of attention: mmengine's defaults (explicit ``q @ k^T`` and ``attn @ v`` matmuls) plus
  ``scaled_dot_product_attention`` (counted by neither mmengine nor fvcore), with the backbones on their counting
  paths (TransNeXt's 3x3 local logits and values as matmuls). What fvcore reports on the authors' code.
* ``'mmcv1'``: mmcv 1.x ``get_model_complexity_info`` (``get_flops.py`` of mmdet 2.x / mmseg 0.x), a ptflops-style
  module counter: convolutions (with bias), linears, norms (x2 when affine), ReLU-type activations, pooling and
  upsampling; no matmul, bmm, einsum or attention.
* ``'mmcv1+attn'``: mmcv 1.x plus the attention matmuls (CrossFormer's detection ``get_flops.py`` adds the
  ``flops()`` its backbone computes for them).

:data:`AUTHORS_RULES` names each family's rule (docs/flops.md: the evidence and the figures each reproduces).
"""
import contextlib
import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.complexity_analysis import _DEFAULT_SUPPORTED_FLOP_OPS
from mmengine.analysis.jit_handles import (bmm_flop_jit, einsum_flop_jit, elementwise_flop_counter, get_shape,
                                           matmul_flop_jit, prod)
from mmengine.registry import MODELS
from mmengine.structures import InstanceData
from torch import nn

RULES = ('all', 'mmcv1', 'mmcv1+attn')

# The rule each family's published figures follow (docs/flops.md: evidence and reproduced rows).
# 'classification' is the ImageNet table at 224x224, 'dense' the detection/segmentation tables.
AUTHORS_RULES: Dict[str, Dict[str, str]] = {
    'gcvit': dict(classification='all', dense='mmcv1'),
    'twins': dict(classification='mmcv1', dense='all'),
    'crossformer': dict(classification='all', dense='mmcv1+attn'),
    'xcit': dict(classification='all', dense='all'),
    'transnext': dict(classification='all', dense='all'),
}


# ----------------------------------------------------------------------------------- handles
def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> Counter:
    """``scaled_dot_product_attention(q, k, v)``: ``q @ k^T`` plus ``attn @ v``. With q ``(..., L, E)``, k ``(..., S,
    E)``, v ``(..., S, Ev)``: ``prod(...) * L * S * (E + Ev)`` MACs, batch dimensions at their broadcast size (the
    softmax, scale and mask are element-wise and not counted, as for explicit matmuls)."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    if q is None or k is None or v is None:
        raise ValueError(f'scaled_dot_product_attention: q, k, v shapes must be known, got {q}, {k}, {v}')
    batch = torch.broadcast_shapes(tuple(q[:-2]), tuple(k[:-2]), tuple(v[:-2]))
    length, source, dim, dim_v = q[-2], k[-2], q[-1], v[-1]
    return Counter({'attention': prod(batch) * length * source * (dim + dim_v)})


def _as_attention(handle):
    """mmengine's matmul/bmm/einsum count under the name ``attention``."""
    return lambda inputs, outputs: Counter({'attention': handle(inputs, outputs)})


ATTENTION_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::matmul': _as_attention(matmul_flop_jit),
    'aten::bmm': _as_attention(bmm_flop_jit),
    'aten::einsum': _as_attention(einsum_flop_jit),
}


def _mmcv1_conv(inputs: List[Any], outputs: List[Any]) -> Counter:
    """mmcv 1.x conv: kernel MACs per output position, plus one add per output element for the bias
    (transposed: per *input* position; its bias term uses ``out_h * out_h``, an mmcv 1.x quirk)."""
    x, w, out = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
    transposed = inputs[6].toIValue()
    has_bias = get_shape(inputs[2]) is not None
    if transposed:
        macs = x[0] * prod(x[2:]) * prod(w)
        bias = out[1] * out[0] * out[2] * out[2] if has_bias and len(out) == 4 else 0
    else:
        macs = out[0] * prod(out[2:]) * prod(w)
        bias = prod(out) if has_bias else 0
    return Counter({'conv': macs + bias})


def _mmcv1_norm(affine_index: int):
    """mmcv 1.x norms: one per element, two with an affine transform."""
    return lambda inputs, outputs: prod(get_shape(inputs[0])) * (
        2 if get_shape(inputs[affine_index]) is not None else 1)


def rule_handles(rule: str) -> Dict[str, Optional[Any]]:
    """Op handles that ``rule`` puts on top of mmengine's defaults (``None``: the op is not counted)."""
    if rule not in RULES:
        raise ValueError(f'FLOPs rule {rule!r} is not one of {RULES}')
    if rule == 'all':
        return dict(ATTENTION_HANDLES)
    handles = dict(ATTENTION_HANDLES) if rule == 'mmcv1+attn' else dict.fromkeys(ATTENTION_HANDLES)
    handles.update({
        'aten::_convolution': _mmcv1_conv,
        'aten::batch_norm': _mmcv1_norm(1),
        'aten::layer_norm': _mmcv1_norm(2),
        'aten::group_norm': _mmcv1_norm(2),
        'aten::instance_norm': _mmcv1_norm(1),
        'aten::grid_sampler': None,
    })
    # one per output element (activations, ReLU6 as hardtanh, upsampling) or input element (pooling)
    handles.update(dict.fromkeys(('aten::relu', 'aten::relu_', 'aten::leaky_relu', 'aten::elu', 'aten::prelu',
                                  'aten::hardtanh', 'aten::upsample_nearest2d', 'aten::upsample_bilinear2d'),
                                 elementwise_flop_counter(0, 1)))
    handles.update(dict.fromkeys(('aten::max_pool2d', 'aten::avg_pool2d', 'aten::adaptive_avg_pool2d',
                                  'aten::adaptive_max_pool2d'), elementwise_flop_counter(1, 0)))
    return handles


# -------------------------------------------------------------------------------- counting
@contextlib.contextmanager
def traceable_attention(model: nn.Module) -> Iterator[nn.Module]:
    """Every backbone in ``model`` takes the paths its contract names for FLOP counting
    (:meth:`~mmvit_backbones.models.backbones.base.PyramidBackbone.counting_paths`) while counting."""
    from mmvit_backbones.models.backbones.base import PyramidBackbone
    with contextlib.ExitStack() as stack:
        for m in model.modules():
            if isinstance(m, PyramidBackbone):
                stack.enter_context(m.counting_paths())
        yield model


@dataclass
class FlopCount:
    """A model's MACs under one rule, in total, per operator and per module."""
    rule: str
    total: int
    by_operator: Dict[str, int] = field(default_factory=dict)
    by_module: Dict[str, int] = field(default_factory=dict)

    def module(self, prefix: str) -> int:
        """MACs of the submodule ``prefix`` (``''`` is the whole model)."""
        return self.by_module.get(prefix, 0)


def count_flops(model: nn.Module, inputs: Union[torch.Tensor, Tuple[Any, ...]], rule: str = 'all') -> FlopCount:
    """Count the MACs of ``model(*inputs)`` under ``rule`` (one of :data:`RULES`), traced in eval mode under
    ``torch.no_grad()`` (the training flag is restored)."""
    inputs = (inputs, ) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), traceable_attention(model):
            # cleared first: a None handle only marks an op ignored, it does not drop mmengine's default handle
            handles = dict(_DEFAULT_SUPPORTED_FLOP_OPS, **rule_handles(rule))
            analyzer = FlopAnalyzer(model, inputs).clear_op_handles().set_op_handle(**handles)
            analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
            return FlopCount(rule, int(analyzer.total()), dict(analyzer.by_operator()), dict(analyzer.by_module()))
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- whole models
class DenseModelForward(nn.Module):
    """The dummy forward the mmdet 2.x / mmseg 0.x ``get_flops.py`` counted, on an mmdet 3 / mmseg 1 model: two-stage
    detectors run backbone, neck, RPN head, then the RoI head's box heads on 1000 proposals and mask heads on the
    first 100 (cascade: every stage, as mmdet 2.x ``forward_dummy``); other detectors and segmentors
    ``model(inputs, data_samples, mode='tensor')`` (mmseg: decode head only, as its ``forward_dummy``). The wrapped
    model is the child ``model``, so per-module counts read ``model.backbone`` etc."""

    num_proposals = 1000

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def data_samples(self, inputs: torch.Tensor) -> list:
        h, w = (int(s) for s in inputs.shape[-2:])  # plain ints (torch 2.1 traces sizes as tensors)
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                    scale_factor=(1.0, 1.0))
        if type(self.model).__module__.startswith('mmseg'):
            from mmseg.structures import SegDataSample as sample_cls
        else:
            from mmdet.structures import DetDataSample as sample_cls
        return [sample_cls(metainfo=meta) for _ in range(inputs.shape[0])]

    def proposals(self, inputs: torch.Tensor) -> list:
        h, w = (int(s) for s in inputs.shape[-2:])  # plain ints (torch 2.1 traces sizes as tensors)
        rng = np.random.RandomState(0)  # NumPy: torch 2.1's tracer refuses a torch.Generator argument
        xy = rng.rand(self.num_proposals, 2) * np.array([w * 0.75, h * 0.75])
        wh = rng.rand(self.num_proposals, 2) * np.array([w * 0.25, h * 0.25]) + 4
        boxes = torch.from_numpy(np.concatenate([xy, xy + wh], axis=1)).float().to(inputs.device)
        return [InstanceData(bboxes=boxes) for _ in range(inputs.shape[0])]

    def forward(self, inputs: torch.Tensor):
        model = self.model
        samples = self.data_samples(inputs)
        if getattr(model, 'with_rpn', False) and getattr(model, 'roi_head', None) is not None:  # a two-stage detector
            x = model.extract_feat(inputs)
            outs = tuple(model.rpn_head(x))
            roi_head = model.roi_head
            if hasattr(roi_head, 'num_stages'):  # cascade: mmdet 2.x forward_dummy, not mmdet 3's forward
                return outs + self.cascade_dummy(roi_head, x, self.proposals(inputs))
            return outs + tuple(roi_head.forward(x, self.proposals(inputs), samples))
        head = getattr(model, 'decode_head', None)
        if head is not None and 'batch_data_samples' in inspect.signature(head.forward).parameters:
            # mmseg's mode='tensor' calls the decode head without samples; Mask2Former's needs their meta
            return head.forward(model.extract_feat(inputs), samples)
        return model(inputs, samples, mode='tensor')

    def cascade_dummy(self, roi_head: nn.Module, x, proposals: list) -> tuple:
        """mmdet 2.x ``CascadeRoIHead.forward_dummy``: every stage's box head on all proposals (no
        refinement between stages), every stage's mask head on the first 100 RoIs. (mmdet 3's ``forward``
        runs the mask heads on all 1000 RoIs, about 3x the whole model.)"""
        from mmdet.structures.bbox import bbox2roi
        rois = bbox2roi([p.bboxes for p in proposals])
        outs = ()
        for stage in range(roi_head.num_stages):
            results = roi_head._bbox_forward(stage, x, rois)
            outs += (results['cls_score'], results['bbox_pred'])
        if roi_head.with_mask:
            for stage in range(roi_head.num_stages):
                outs += (roi_head._mask_forward(stage, x, rois[:100])['mask_preds'], )
        return outs


# ---------------------------------------------------------------- ImageNet-table comparisons
def imagenet_settings(backbone_type: str, arch: str) -> dict:
    """Constructor arguments giving the registered ``backbone_type`` its ImageNet geometry (the backbone's
    ``classification_settings``)."""
    return dict(MODELS.get(backbone_type).classification_settings(arch))


def imagenet_flops(backbone: nn.Module, rule: str, img_size: int = 224) -> Tuple[int, FlopCount]:
    """The figure comparable to a paper's ImageNet table: the backbone at ``img_size`` under ``rule``,
    minus its dense-only modules, plus its ImageNet-only layers (``classification_only_macs``).
    Returns ``(macs, count)``."""
    count = count_flops(backbone, torch.randn(1, backbone.in_channels, img_size, img_size), rule)
    dense_only = sum(count.module(m) for m in backbone.dense_only_modules)
    return count.total - dense_only + backbone.classification_only_macs(img_size), count
