"""The CONTRACT every registered backbone type satisfies, checked once for all of them (tiny archs).

Family test files keep what is family-specific (real archs' channels, parity with the authors' code,
checkpoints); the outside behaviour that :class:`PyramidBackbone` owns is tested here: outputs and
declared strides for several ``out_indices``, ``frozen_stages`` fixed at build time, ``norm_eval``,
``with_cp`` (BatchNorm statistics counted once), empty batches, inference mode followed by training,
and the trainable set being exactly the set that gets gradients (DDP with
``find_unused_parameters=False``).
"""
import math

import pytest
import torch
from backbone_checks import (STRIDES, TINY_ARCHS, check_bad_inputs, check_drop_path, check_frozen_stages,
                             check_norm_eval, check_registry, check_with_cp, projection_loss)
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmvit_backbones.models.backbones import PyramidBackbone

TYPES = sorted(TINY_ARCHS)
OUT_SUBSETS = [(0, 1, 2, 3), (0, 1, 2), (1, 2, 3), (0, 2), (3, ), (0, )]
SIZE = (64, 96)


def build(type_name: str, **kwargs) -> PyramidBackbone:
    kwargs.setdefault('drop_path_rate', 0.0)
    return MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name], **kwargs))


def test_every_registered_backbone_is_covered():
    registered = {name for name, cls in MODELS.module_dict.items()
                  if isinstance(cls, type) and issubclass(cls, PyramidBackbone)}
    assert registered == set(TYPES), f'tiny archs missing for {sorted(registered - set(TYPES))}'


@pytest.mark.parametrize('type_name', TYPES)
def test_registry_and_bad_inputs(type_name):
    check_registry(type_name, TINY_ARCHS[type_name])
    check_bad_inputs(type_name, TINY_ARCHS[type_name])


@pytest.mark.parametrize('type_name', TYPES)
@pytest.mark.parametrize('out_indices', OUT_SUBSETS)
def test_outputs_and_declared_strides(type_name, out_indices):
    model = build(type_name, out_indices=out_indices).eval()
    full = build(type_name)
    channels = [full.out_channels[i] for i in out_indices]
    assert model.out_channels == tuple(channels)
    assert model.out_strides == tuple(STRIDES[i] for i in out_indices)
    info = model.feature_info
    assert info.channels() == channels and info.reduction() == list(model.out_strides)
    names = dict(model.named_modules())
    assert all(name in names for name in info.module_name())
    for h, w in (SIZE, (75, 101)):
        with torch.no_grad():
            outs = model(torch.randn(2, 3, h, w))
        assert isinstance(outs, tuple) and len(outs) == len(out_indices)
        for out, c, s in zip(outs, channels, model.out_strides):
            assert tuple(out.shape) == (2, c, math.ceil(h / s), math.ceil(w / s))
            assert out.is_contiguous()


@pytest.mark.parametrize('type_name', TYPES)
def test_unbuilt_stages_are_declared(type_name):
    """Only the stages up to the last output exist; the names of the others are the checkpoint key prefixes
    the loader reports instead of rejecting."""
    full, short = build(type_name), build(type_name, out_indices=(0, 1))
    missing = set(full.state_dict()) - set(short.state_dict())
    assert missing, f'{type_name} built stages its outputs do not need'
    assert all(short.is_unbuilt_key(key) for key in missing), sorted(k for k in missing if not short.is_unbuilt_key(k))
    assert not any(short.is_unbuilt_key(key) for key in short.state_dict())
    assert not any(full.is_unbuilt_key(key) for key in full.state_dict())


def _trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize('type_name', TYPES)
@pytest.mark.parametrize('out_indices', OUT_SUBSETS[:4])
@pytest.mark.parametrize('frozen_stages', [-1, 0, 1])
def test_trainable_set_is_fixed_at_build_and_gets_gradients(type_name, out_indices, frozen_stages):
    """What DDP with find_unused_parameters=False needs: the parameters that require grad right after
    build are exactly those that get a gradient after train() and a backward, and train() changes none."""
    model = build(type_name, out_indices=out_indices, frozen_stages=frozen_stages)
    trainable = _trainable(model)
    model.train()
    assert _trainable(model) == trainable, 'train() changed requires_grad'
    projection_loss(model(torch.randn(2, 3, *SIZE))).backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad == trainable, (f'unused: {sorted(trainable - with_grad)[:5]}, '
                                    f'frozen with grad: {sorted(with_grad - trainable)[:5]}')
    frozen = set(dict(model.named_parameters())) - trainable
    assert bool(frozen) == (frozen_stages >= 0)


@pytest.mark.parametrize('type_name', TYPES)
def test_frozen_stages(type_name):
    check_frozen_stages(lambda **kw: build(type_name, **kw))


@pytest.mark.parametrize('type_name', TYPES)
def test_norm_eval_and_drop_path(type_name):
    check_norm_eval(lambda **kw: build(type_name, **kw))
    check_drop_path(lambda **kw: build(type_name, **kw))


@pytest.mark.slow
@pytest.mark.parametrize('type_name', TYPES)
def test_with_cp_same_outputs_and_gradients(type_name):
    check_with_cp(lambda **kw: build(type_name, **kw))


@pytest.mark.parametrize('type_name', TYPES)
def test_with_cp_counts_batchnorm_statistics_once(type_name):
    torch.manual_seed(0)
    ref = build(type_name)
    cp = build(type_name, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, *SIZE)
    for model in (ref, cp):
        model.train()
        projection_loss(model(x)).backward()
    for (name, a), b in zip(ref.named_buffers(), cp.buffers()):
        torch.testing.assert_close(a, b, msg=lambda m: f'{type_name} buffer {name}: {m}')
    assert all(int(m.num_batches_tracked) == 1 for m in cp.modules() if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('type_name', TYPES)
def test_empty_batch(type_name):
    model = build(type_name).eval()
    with torch.no_grad():
        outs = model(torch.randn(0, 3, *SIZE))
    assert [tuple(o.shape) for o in outs] == [(0, c, math.ceil(SIZE[0] / s), math.ceil(SIZE[1] / s))
                                            for c, s in zip(model.out_channels, model.out_strides)]
    model.train()
    for m in model.modules():  # a BatchNorm cannot take batch statistics of nothing
        if isinstance(m, _BatchNorm):
            m.eval()
    outs = model(torch.randn(0, 3, *SIZE))
    sum(o.sum() for o in outs).backward()


@pytest.mark.parametrize('type_name', TYPES)
def test_inference_mode_then_training(type_name):
    """Caches filled under torch.inference_mode() must not hand inference tensors to a training step."""
    model = build(type_name).eval()
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        model(x)
    with torch.no_grad():
        model(x)
    model.train()
    projection_loss(model(x)).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.inference_mode():
        model(x)


@pytest.mark.parametrize('type_name', TYPES)
def test_full_checkpoint_loads_into_fewer_stages(type_name, tmp_path):
    """A checkpoint of every stage loads into a backbone that builds fewer: the keys of the unbuilt
    stages are reported as unused, not errors."""
    from mmvit_backbones.checkpoint import load_pretrained
    path = str(tmp_path / 'full.pth')
    full = build(type_name)
    torch.save({'state_dict': full.state_dict()}, path)
    short = build(type_name, out_indices=(0, 1))
    report = load_pretrained(short, path)
    assert not report.missing
    assert report.unexpected and all(short.is_unbuilt_key(k) for k in report.unexpected)
    for name, tensor in short.state_dict().items():
        torch.testing.assert_close(tensor, full.state_dict()[name])


@pytest.mark.parametrize('type_name', TYPES)
def test_reference_paths_compute_the_same_function(type_name):
    """``reference_paths()`` (the one switch) runs the readable reference of every fast path."""
    from mmvit_backbones.utils.fast_paths import reference_paths
    model = build(type_name).eval()
    x = torch.randn(2, 3, 75, 101)
    with torch.no_grad():
        fast = model(x)
        with reference_paths():
            ref = model(x)
    for a, b in zip(fast, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('type_name', TYPES)
def test_stage_blocks_give_attention_maps(type_name):
    """Every stage declares its blocks, and each block maps its attention for the analysis tools."""
    from mmvit_backbones.analysis.attention_map import attention_map
    model = build(type_name).eval()
    image = torch.randn(1, 3, 96, 128)
    for stage in range(model.num_stages):
        assert len(model.stage_blocks(stage)) >= 1
        result = attention_map(model, image, stage, len(model.stage_blocks(stage)) - 1)
        assert result['kind'] in ('spatial', 'channel') and result['map'].size > 0
