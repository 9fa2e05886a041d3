"""``feature_info`` in timm's convention, and the code docs/usage.md shows for detectron2 and Hugging Face users:
the code blocks are taken from the document and run as they are (detectron2's ``Backbone``, ``ShapeSpec`` and
``BACKBONE_REGISTRY`` replaced by minimal stand-ins with detectron2's interface, since it is not installed)."""
import math
import os
import re
import sys
import types
from dataclasses import dataclass
from typing import Optional

import pytest
import torch
from torch import nn

import mmvit_backbones
from test_api import tiny
from test_stock_configs import BACKBONES

USAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs', 'usage.md')


def doc_block(marker: str) -> str:
    """The ```python block right after ``<!-- tested: tests/test_feature_info.py (<marker>) -->``."""
    text = open(USAGE).read()
    pattern = r'<!-- tested: tests/test_feature_info\.py \(' + re.escape(marker) + r'\) -->\s*```python\n(.*?)```'
    found = re.search(pattern, text, re.S)
    assert found, f'docs/usage.md has no tested code block {marker!r}'
    return found.group(1)


@dataclass
class ShapeSpec:  # detectron2.layers.ShapeSpec
    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None


class Backbone(nn.Module):  # detectron2.modeling.Backbone: an abstract nn.Module with these defaults
    def __init__(self):
        super().__init__()

    @property
    def size_divisibility(self) -> int:
        return 0

    @property
    def padding_constraints(self):
        return {}

    def output_shape(self):
        raise NotImplementedError


class Registry:  # detectron2's BACKBONE_REGISTRY
    def __init__(self):
        self.registered = {}

    def register(self):
        def wrap(fn):
            self.registered[fn.__name__] = fn
            return fn
        return wrap


@pytest.fixture
def detectron2(monkeypatch):
    modeling = types.ModuleType('detectron2.modeling')
    modeling.Backbone, modeling.ShapeSpec, modeling.BACKBONE_REGISTRY = Backbone, ShapeSpec, Registry()
    package = types.ModuleType('detectron2')
    package.modeling = modeling
    monkeypatch.setitem(sys.modules, 'detectron2', package)
    monkeypatch.setitem(sys.modules, 'detectron2.modeling', modeling)
    return modeling


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
@pytest.mark.parametrize('out_indices', [(0, 1, 2, 3), (3, 1)])
def test_feature_info_declares_the_outputs(type_name, out_indices):
    model = tiny(type_name, out_indices=out_indices).eval()
    info = model.feature_info
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert info.channels() == list(model.out_channels) == [o.shape[1] for o in outs]
    assert info.reduction() == list(model.out_strides) == [64 // o.shape[2] for o in outs] == \
        [(4, 8, 16, 32)[i] for i in out_indices]
    assert [d['index'] for d in info.get_dicts()] == list(out_indices) and len(info) == len(out_indices)
    modules = dict(model.named_modules())
    for i, name in enumerate(info.module_name()):
        assert name in modules, (type_name, name)
        assert info.channels(i) == model.out_channels[i] and info.module_name(i) == name


def test_detectron2_wrapper_of_the_docs(detectron2):
    namespace = {'__name__': 'usage_detectron2'}
    exec(compile(doc_block('detectron2 wrapper'), 'docs/usage.md', 'exec'), namespace)
    wrapper_cls = namespace['MMViTBackbone']
    assert issubclass(wrapper_cls, Backbone)
    backbone = wrapper_cls('gcvit-xxtiny', out_indices=(1, 2, 3)).eval()
    shapes = backbone.output_shape()
    assert shapes == {'res3': ShapeSpec(channels=128, stride=8), 'res4': ShapeSpec(channels=256, stride=16),
                      'res5': ShapeSpec(channels=512, stride=32)}
    assert backbone.size_divisibility == 32
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 96, 128))
    assert list(outs) == ['res3', 'res4', 'res5']
    for name, out in outs.items():
        assert out.shape[1] == shapes[name].channels and 96 // out.shape[2] == shapes[name].stride
    # the registered builder, as detectron2's build_backbone(cfg) calls it
    build = detectron2.BACKBONE_REGISTRY.registered['build_mmvit_backbone']
    cfg = types.SimpleNamespace(MODEL=types.SimpleNamespace(MMVIT=types.SimpleNamespace(
        NAME='twins-pcpvt-small', OUT_INDICES=[0, 1, 2, 3], PRETRAINED=None)))
    built = build(cfg, ShapeSpec(channels=3))
    assert {k: (v.channels, v.stride) for k, v in built.output_shape().items()} == \
        {'res2': (64, 4), 'res3': (128, 8), 'res4': (320, 16), 'res5': (512, 32)}
    assert [f'res{int(math.log2(s))}' for s in built.body.feature_info.reduction()] == built._out_features


def test_hf_index_mapping_of_the_docs():
    namespace = {'__name__': 'usage_hf'}
    exec(compile(doc_block('HF index mapping'), 'docs/usage.md', 'exec'), namespace)
    to_mmvit, fields = namespace['mmvit_out_indices'], namespace['hf_backbone_fields']
    assert to_mmvit(out_features=['stage2', 'stage3', 'stage4']) == (1, 2, 3)
    assert to_mmvit(out_indices=[1, 4]) == (0, 3) and to_mmvit(out_indices=[-1]) == (3, ) and to_mmvit() == (3, )
    assert to_mmvit(out_features=['stage1'], out_indices=[1]) == (0, )
    with pytest.raises(ValueError, match='disagree'):
        to_mmvit(out_features=['stage1'], out_indices=[2])
    with pytest.raises(ValueError, match=r"out_features \['res5'\] are not stages"):
        to_mmvit(out_features=['res5'])
    with pytest.raises(ValueError, match='the stem'):
        to_mmvit(out_indices=[0, 1])
    backbone = mmvit_backbones.create_backbone('twins-svt-small',
                                               out_indices=to_mmvit(out_features=['stage2', 'stage3', 'stage4']))
    assert fields(backbone) == dict(stage_names=['stem', 'stage1', 'stage2', 'stage3', 'stage4'],
                                    out_indices=[2, 3, 4], out_features=['stage2', 'stage3', 'stage4'],
                                    channels=[128, 256, 512])
