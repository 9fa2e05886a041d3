"""TransNeXt backbone: CONTRACT checks, parity with the authors' dense code, checkpoint loading."""
import json
import os

import pytest
import torch
from amp_checks import cpu_autocast_supports
from backbone_checks import check_outputs, check_registry
from mmengine.registry import MODELS

from mmvit_backbones.checkpoint import CheckpointError
from mmvit_backbones.models.backbones.transnext import TransNeXt

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'transnext')
SMALL = dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4))
CHANNELS = {'micro': (48, 96, 192, 384), 'tiny': (72, 144, 288, 576), 'small': (72, 144, 288, 576),
            'base': (96, 192, 384, 768)}


def build(**kwargs):
    kwargs.setdefault('arch', SMALL)
    kwargs.setdefault('img_size', 224)  # a small bias table keeps the tests fast
    return TransNeXt(**kwargs)


@pytest.mark.parametrize('arch', sorted(CHANNELS))
def test_registry_and_outputs(arch):
    """Every arch builds from both scopes; outputs at 224x224, a non-square detection-like size and a
    size not divisible by 32. small/base run with one block per stage (same widths, strides and
    heads; depth changes no shape) to keep the suite within its time budget."""
    check_registry('TransNeXt', arch)
    settings = dict(TransNeXt.arch_zoo[arch])
    if arch in ('small', 'base'):
        settings['depths'] = (1, 1, 1, 1)
    model = TransNeXt(arch=settings if arch in ('small', 'base') else arch)
    check_outputs(model, [(224, 224), (160, 256), (100, 150)], CHANNELS[arch])


@pytest.mark.parametrize('mode', ['interpolate', 'extrapolate'])
def test_outputs_any_size_and_out_indices(mode):
    model = build(pos_bias_mode=mode, img_size=128)
    check_outputs(model, [(32, 32), (33, 47), (64, 200)], SMALL['embed_dims'])
    dino4 = build(pos_bias_mode=mode, out_indices=(1, 2, 3))
    check_outputs(dino4, [(96, 64)], SMALL['embed_dims'], out_indices=(1, 2, 3))


def test_drop_path_schedule():
    model = build(drop_path_rate=0.3)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    assert max(rates) == pytest.approx(0.3)


def test_bad_inputs():
    with pytest.raises(ValueError, match='pos_bias_mode'):
        build(pos_bias_mode='nearest')
    with pytest.raises(ValueError, match='attn_impl'):
        build(attn_impl='cuda')
    with pytest.raises(ValueError, match='sr_ratios'):
        build(arch=dict(SMALL, sr_ratios=(8, 4, 2, 2)))


def _parity_fixture():
    return torch.load(os.path.join(FIXTURES, 'dense_parity.pth'), weights_only=True)


@pytest.mark.parametrize('impl', ['fast', 'reference'])
@pytest.mark.parametrize('mode', ['interpolate', 'extrapolate'])
def test_parity_with_authors_dense_backbone(tmp_path, impl, mode):
    """Features equal those of the authors' dense TransNeXt (see fixtures/transnext/NOTE.md)."""
    fx = _parity_fixture()
    path = str(tmp_path / 'dense.pth')
    torch.save({'state_dict': fx['state_dict']}, path)  # an mmdet-style checkpoint: backbone.* keys
    model = TransNeXt(arch=fx['arch'], pos_bias_mode=mode, img_size=fx['img_size'],
                      pretrain_size=fx['pretrain_size'], attn_impl=impl,
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    for size, expected in fx['outputs'][mode].items():
        with torch.no_grad():
            outs = model(fx['inputs'][size])
        for i, (out, ref) in enumerate(zip(outs, expected)):
            torch.testing.assert_close(out, ref, rtol=0, atol=2e-5 * ref.abs().max().item(),
                                       msg=f'{mode} {impl} input {size} stage {i}')


def test_training_forward_matches_eval_path():
    """The autograd path (used in training) computes the same features as the inference path."""
    fx = _parity_fixture()
    model = TransNeXt(arch=fx['arch'], img_size=fx['img_size'])
    model.load_state_dict({k[len('backbone.'):]: v for k, v in fx['state_dict'].items()})
    model.eval()
    size = (96, 160)
    outs = model(fx['inputs'][size])  # grad enabled, eval mode: no drop path
    for out, ref in zip(outs, fx['outputs']['interpolate'][size]):
        torch.testing.assert_close(out.detach(), ref, rtol=0, atol=2e-5 * ref.abs().max().item())


@pytest.mark.parametrize('arch', sorted(CHANNELS))
def test_imagenet_layout_converts(arch):
    """Every key of the authors' ImageNet checkpoint (minus the head) maps onto ours, same shapes."""
    layout = json.load(open(os.path.join(FIXTURES, 'imagenet_layout.json')))[arch]
    from mmvit_backbones.checkpoint import get_converter
    model = TransNeXt(arch=arch)
    fake = {k: torch.zeros(s) for k, s in layout.items()}
    converted = get_converter('transnext').convert(fake, model)
    own = model.state_dict()
    assert set(converted) == set(own)
    assert all(tuple(own[k].shape) == tuple(v.shape) for k, v in converted.items())


def test_imagenet_checkpoint_loads_through_init_cfg(tmp_path):
    """A {'model': ...} ImageNet checkpoint with a head loads, with a report; wrong files fail clearly."""
    src = TransNeXt(arch='micro')
    sd = {k: torch.randn_like(v) for k, v in src.state_dict().items()}
    sd['head.weight'], sd['head.bias'] = torch.zeros(1000, 384), torch.zeros(1000)
    path = str(tmp_path / 'in1k.pth')
    torch.save({'model': sd}, path)
    model = MODELS.build(dict(type='TransNeXt', arch='micro', init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k

    wrong_arch = MODELS.build(dict(type='TransNeXt', arch='tiny', init_cfg=dict(type='Pretrained',
                                                                               checkpoint=path)))
    with pytest.raises(CheckpointError, match='wrong shape'):
        wrong_arch.init_weights()
    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {'backbone.layers.0.blocks.0.attn.qkv.weight': torch.zeros(3, 3)}}, other)
    wrong_family = build(init_cfg=dict(type='Pretrained', checkpoint=other))
    with pytest.raises(CheckpointError, match='not a transnext checkpoint'):
        wrong_family.init_weights()
    partial = str(tmp_path / 'partial.pth')
    torch.save({k: v for k, v in sd.items() if 'block4' not in k}, partial)
    missing = MODELS.build(dict(type='TransNeXt', arch='micro', init_cfg=dict(type='Pretrained',
                                                                             checkpoint=partial)))
    with pytest.raises(CheckpointError, match='missing'):
        missing.init_weights()


def test_own_checkpoint_round_trip(tmp_path):
    model = build()
    model.init_weights()
    path = str(tmp_path / 'ours.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    again = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    again.init_weights()
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])


def test_random_init_follows_authors():
    model = build()
    model.init_weights()
    attn = model.block1[0].attn
    assert torch.allclose(torch.nn.functional.softplus(attn.temperature), torch.tensor(1 / 0.24))
    # the authors' trunc_normal_(std=4e-4) keeps timm's absolute bounds (-2, 2): a plain normal at this std
    assert 0 < attn.relative_pos_bias_local.abs().max() < 4e-4 * 6
    assert attn.learnable_bias.abs().max() == 0
    assert attn.query_embedding.std() > 0


@pytest.mark.parametrize('dtype', [torch.bfloat16, pytest.param(torch.float16, marks=pytest.mark.skipif(
    not cpu_autocast_supports(torch.float16), reason='CPU float16 autocast needs a newer torch (2.3+)'))])
def test_amp_training_step_is_finite(dtype):
    model = build(drop_path_rate=0.1)
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 64, 96)
    with torch.autocast('cpu', dtype=dtype):
        outs = model(x)
        loss = sum(o.float().pow(2).mean() for o in outs)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_depth_mismatch_is_an_error(tmp_path):
    """Tiny and Small have the same widths: a Small file must not load silently into Tiny."""
    deep = build(arch=dict(SMALL, depths=(1, 1, 2, 1)))
    path = str(tmp_path / 'deep.pth')
    torch.save(deep.state_dict(), path)
    shallow = build(init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointError, match='blocks per stage'):
        shallow.init_weights()
