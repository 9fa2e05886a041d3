"""XCiT backbone: CONTRACT checks, parity with the authors' dense backbone, checkpoint layouts."""
import json
import math
import os

import pytest
import torch
from backbone_checks import build_in_scope, check_outputs, check_registry
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope, Registry

from mmvit_backbones.checkpoint import CheckpointError, convert_file, get_converter, load_pretrained
from mmvit_backbones.models.backbones.xcit import (XCiT, cross_covariance_attention,
                                                   cross_covariance_attention_reference)
from mmvit_backbones.models.layers.pyramid import ConvTranspose2x2, SimplePyramid
from mmvit_backbones.utils.fast_paths import reference_paths

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'xcit')
ALL_ARCHS = sorted(XCiT.arch_zoo)
SMALL = dict(embed_dims=32, depth=4, num_heads=2, patch_size=16, tap_blocks=(0, 1, 2, 3))
SMALL_P8 = dict(SMALL, patch_size=8)
# ImageNet table of the authors' README (params in millions, same for p8 and p16)
PUBLISHED_M = {'nano-12': 3, 'tiny-12': 7, 'tiny-24': 12, 'small-12': 26, 'small-24': 48, 'medium-24': 84,
               'large-24': 189}
# ImageNet-only parts that the dense backbone does not have
CLS_ONLY = ('cls_token', 'cls_attn_blocks.', 'norm.', 'head.')


def build(arch=SMALL, **kwargs):
    return XCiT(arch=arch, **kwargs)


def imagenet_shapes():
    with open(os.path.join(FIXTURES, 'imagenet_keys.json')) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------ CONTRACT
def test_arch_zoo_is_the_contract_list():
    assert ALL_ARCHS == sorted(f'{s}-{d}-p{p}' for s, d in [('nano', 12), ('tiny', 12), ('tiny', 24), ('small', 12),
                                                            ('small', 24), ('medium', 24), ('large', 24)]
                               for p in (8, 16))


def test_registry_both_scopes():
    check_registry('XCiT', SMALL)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_every_arch_builds_in_both_scopes(arch):
    with torch.device('meta'):
        for scope in ('mmdet', 'mmseg'):
            model, _ = build_in_scope(scope, dict(type='XCiT', arch=arch))
            assert type(model) is XCiT and model.out_channels == (model.embed_dims, ) * 4


def test_sibling_registry_named_xcit_does_not_shadow_ours():
    """mmpretrain 1.2 registers its own ``XCiT`` in the ``mmpretrain`` child registry. mmdet/mmseg
    scopes search themselves and then the root, never a sibling, so ours is found."""
    sibling = Registry('model', parent=ROOT_MODELS, scope='fake_mmpretrain')

    @sibling.register_module(name='XCiT')
    class OtherXCiT(torch.nn.Module):

        def __init__(self, **kwargs):
            super().__init__()

    for scope in ('mmdet', 'mmseg'):
        model, _ = build_in_scope(scope, dict(type='XCiT', arch=SMALL))
        assert type(model) is XCiT
    with DefaultScope.overwrite_default_scope('fake_mmpretrain'):
        assert type(sibling.build(dict(type='XCiT', arch=SMALL))) is OtherXCiT


@pytest.mark.parametrize('arch', ['nano-12-p16', 'nano-12-p8', 'tiny-24-p8', 'small-12-p16'])
def test_outputs_real_archs(arch):
    model = build(arch)
    c = model.embed_dims
    check_outputs(model, [(224, 224), (192, 320), (100, 75)], [c] * 4)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_outputs_every_arch_reduced_depth(arch):
    """Every arch's widths, heads and patch size (4 blocks instead of 12/24 to keep the suite fast)."""
    model = build(dict(XCiT.arch_zoo[arch], depth=4, tap_blocks=(0, 1, 2, 3)))
    check_outputs(model, [(224, 224), (100, 75)], [model.embed_dims] * 4)


@pytest.mark.parametrize('arch', [SMALL, SMALL_P8])
def test_outputs_many_sizes(arch):
    check_outputs(build(arch), [(32, 32), (33, 65), (224, 224), (100, 75), (127, 129)], [32] * 4)


def test_out_indices_subset_builds_only_those_levels():
    full = build(SMALL).eval()
    part = build(SMALL, out_indices=(1, 2, 3)).eval()
    assert sorted(part.pyramid.levels) == ['1', '2', '3']
    missing, unexpected = part.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith('pyramid.levels.0.') for k in unexpected)
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        for a, b in zip(full(x)[1:], part(x)):
            torch.testing.assert_close(a, b)


def test_drop_path_is_constant_over_depth():
    model = build(SMALL, drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    assert rates == [0.2] * SMALL['depth']


def test_bad_inputs():
    with pytest.raises(ValueError, match='patch_size 4'):
        build(dict(SMALL, patch_size=4))
    with pytest.raises(ValueError, match='tap_blocks'):
        build(dict(SMALL, tap_blocks=(0, 1, 2, 4)))


def test_norm_cfg_syncbn():
    model = build(SMALL, norm_cfg=dict(type='SyncBN'))
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    model.eval()
    with torch.no_grad():
        assert len(model(torch.randn(1, 3, 64, 64))) == 4


# ------------------------------------------------------------------------------- XCA numerics
def test_xca_matches_reference_form():
    q, k = torch.randn(2, 3, 50, 16), torch.randn(2, 3, 50, 16)
    t = torch.rand(3, 1, 1) + 0.5
    torch.testing.assert_close(cross_covariance_attention(q, k, t), cross_covariance_attention_reference(q, k, t),
                               rtol=1e-5, atol=1e-6)


def test_xca_is_safe_in_half_precision():
    # 4096 tokens of magnitude ~30: the squared norm (~3.7e6) overflows float16 (max 65504)
    q, k = torch.randn(1, 2, 4096, 8) * 30, torch.randn(1, 2, 4096, 8) * 30
    t = torch.ones(2, 1, 1)
    ref = cross_covariance_attention_reference(q, k, t)
    out = cross_covariance_attention(q.half(), k.half(), t.half())
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-3)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model = build(SMALL).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, 64, 64) * 50)
    assert all(torch.isfinite(o.float()).all() for o in outs)


def test_position_encoding_cache_and_batch():
    model = build(SMALL).eval()
    pe = model.pos_embed
    a = pe(5, 7)
    pe._cache.clear()
    torch.testing.assert_close(pe(5, 7), a)
    x = torch.randn(3, 3, 80, 112)
    with torch.no_grad():
        batched = model(x)
        single = model(x[1:2])
    for b, s in zip(batched, single):
        torch.testing.assert_close(b[1:2], s, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('shape', [(1, 16, 7, 5), (2, 16, 40, 3)])
def test_conv_transpose_2x2_matches_reference(shape):
    up = ConvTranspose2x2(16, 8)
    up.block_elements = 200  # several row blocks
    x = torch.randn(*shape, requires_grad=True)
    out = up(x)
    with reference_paths():  # the plain nn.ConvTranspose2d forward
        ref = up(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), (x, up.weight, up.bias))
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, up.weight, up.bias))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-4)


def test_chunked_inference_mlp_matches_whole(monkeypatch):
    model = build(SMALL).eval()
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        whole = model(x)
        monkeypatch.setattr(type(model.blocks[0]), 'mlp_chunk_tokens', 7)
        chunked = model(x)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_pyramid_rejects_unreachable_stride():
    with pytest.raises(ValueError, match='output stride 64'):
        SimplePyramid(8, 8, out_strides=(64, ))


# ------------------------------------------------------------------------ parity with the authors
def _authors_arch(cfg):
    return dict(embed_dims=cfg['embed_dim'], depth=cfg['depth'], num_heads=cfg['num_heads'],
                patch_size=cfg['patch_size'], tap_blocks=tuple(cfg['out_indices']),
                layer_scale_init=cfg['eta'])


@pytest.mark.parametrize('patch', [16, 8])
def test_parity_with_authors_dense_backbone(patch, tmp_path):
    """Fixtures: the authors' detection (p16) / segmentation (p8) ``XCiT`` with random weights (NOTE.md).
    Their dense state dict is loaded through ``init_cfg`` as an mmdet checkpoint would hold it."""
    fixture = torch.load(os.path.join(FIXTURES, f'dense_p{patch}.pth'), weights_only=True)
    path = str(tmp_path / 'det.pth')
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in fixture['state_dict'].items()}), path)
    model = build(_authors_arch(fixture['config']), init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    for case in fixture['cases']:
        x = case['input']
        with torch.no_grad():
            ours = model(x)
        for level, (a, b) in enumerate(zip(ours, case['outputs'])):
            if all(s % 32 == 0 for s in x.shape[-2:]):
                assert a.shape == b.shape
            # elsewhere the authors' upsampled levels are larger (we crop to ceil(H/s)) and their
            # pooled levels drop a partial window (we keep it): compare the common region
            h, w = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])
            scale = b.abs().max().item()
            torch.testing.assert_close(a[..., :h, :w], b[..., :h, :w], rtol=1e-4, atol=1e-5 * max(scale, 1.0),
                                       msg=f'input {tuple(x.shape)} level {level}')
            assert a.shape[-2:] == (math.ceil(x.shape[-2] / 2**(level + 2)), math.ceil(x.shape[-1] / 2**(level + 2)))


# ------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_imagenet_layout_converts_to_ours(arch):
    """Every official ImageNet key maps onto our backbone (same shape) or is classification-only, and
    only the pyramid (absent from ImageNet models) is left; parameter counts match the README."""
    shapes = imagenet_shapes()[arch]
    with torch.device('meta'):
        model = build(arch)
        official = {k: torch.empty(s) for k, s in shapes.items()}
    converted = get_converter('xcit').convert(official, model)
    own = model.state_dict()
    assert {k: tuple(v.shape) for k, v in converted.items()} == \
        {k: tuple(v.shape) for k, v in own.items() if not k.startswith('pyramid.')}
    n_official = sum(math.prod(s) for k, s in shapes.items() if not k.endswith(('running_mean', 'running_var',
                                                                                   'num_batches_tracked')))
    n_cls_only = sum(math.prod(s) for k, s in shapes.items() if k.startswith(CLS_ONLY))
    n_pyramid = sum(p.numel() for p in model.pyramid.parameters())
    n_ours = sum(p.numel() for p in model.parameters())
    assert n_ours - n_pyramid + n_cls_only == n_official
    assert round(n_official / 1e6) == PUBLISHED_M[arch.rsplit('-', 1)[0]]


@pytest.mark.parametrize('container', ['model', 'state_dict', 'state_dict_ema', 'raw'])
def test_imagenet_checkpoint_loads_with_report(container, tmp_path):
    shapes = imagenet_shapes()['nano-12-p16']
    torch.manual_seed(3)
    official = {k: torch.randn(s) if s else torch.tensor(5) for k, s in shapes.items()}
    path = str(tmp_path / 'xcit_nano_12_p16_384_dist.pth')
    torch.save(official if container == 'raw' else {container: official, 'epoch': 400}, path)
    model = build('nano-12-p16', init_cfg=dict(type='Pretrained', checkpoint=path))
    report = load_pretrained(model, path)
    assert report.missing and all(k.startswith('pyramid.') for k in report.missing)
    assert not report.unexpected
    torch.testing.assert_close(model.blocks[3].gamma3, official['blocks.3.gamma3'])
    torch.testing.assert_close(model.patch_embed.convs[2].bn.running_var,
                               official['patch_embed.proj.4.1.running_var'])
    torch.testing.assert_close(model.pos_embed.proj.weight, official['pos_embeder.token_projection.weight'])
    model.init_weights()  # through init_cfg
    torch.testing.assert_close(model.blocks[3].gamma3, official['blocks.3.gamma3'])


def test_own_checkpoint_round_trip_and_convert_file(tmp_path):
    model = build(SMALL)
    path = str(tmp_path / 'ours.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    other = build(SMALL)
    report = load_pretrained(other, path)
    assert not report.missing and not report.unexpected
    for k, v in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[k], v)
    out = convert_file('xcit', path, build(SMALL))
    assert out['meta']['family'] == 'xcit' and set(out['state_dict']) == set(model.state_dict())


def test_wrong_checkpoints_raise(tmp_path):
    fixture = torch.load(os.path.join(FIXTURES, 'dense_p8.pth'), weights_only=True)
    path = str(tmp_path / 'p8.pth')
    torch.save(fixture['state_dict'], path)
    with pytest.raises(CheckpointError, match='wrong shape'):  # p8 weights into a p16 model
        load_pretrained(build(dict(_authors_arch(fixture['config']), patch_size=16)), path)
    path = str(tmp_path / 'other.pth')
    torch.save({'model': {'layers.0.blocks.0.attn.qkv.weight': torch.zeros(3, 3)}}, path)
    with pytest.raises(CheckpointError, match='not a xcit checkpoint'):
        load_pretrained(build(SMALL), path)
    path = str(tmp_path / 'truncated.pth')
    sd = {k: v for k, v in fixture['state_dict'].items() if not k.startswith('blocks.4.')}
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match='missing'):
        load_pretrained(build(_authors_arch(fixture['config'])), path)


def test_convert_checkpoint_tool(tmp_path, monkeypatch):
    import runpy
    import sys
    shapes = imagenet_shapes()['nano-12-p16']
    official = {k: torch.randn(s) if s else torch.tensor(5) for k, s in shapes.items()}
    src, dst = str(tmp_path / 'xcit_nano_12_p16.pth'), str(tmp_path / 'converted.pth')
    torch.save({'model': official}, src)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setattr(sys, 'argv', ['convert_checkpoint.py', '--family', 'xcit', src, dst])
    runpy.run_path(os.path.join(root, 'tools', 'convert_checkpoint.py'), run_name='__main__')
    model = build('nano-12-p16', init_cfg=dict(type='Pretrained', checkpoint=dst))
    model.init_weights()
    torch.testing.assert_close(model.blocks[11].attn.qkv.weight, official['blocks.11.attn.qkv.weight'])
