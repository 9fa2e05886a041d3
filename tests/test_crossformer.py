"""CrossFormer / CrossFormer++ backbone: contract, parity with the authors' dense code, checkpoints."""
import json
import os

import pytest
import torch
from mmengine.registry import MODELS

from backbone_checks import build_in_scope, check_outputs, projection_loss
from mmvit_backbones.checkpoint import CheckpointError, convert_file, load_pretrained
from mmvit_backbones.models.backbones import crossformer as cf
from mmvit_backbones.utils.fast_paths import reference_paths

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'crossformer')
ARCHS = ['tiny', 'small', 'base', 'large', 'pp-small', 'pp-base', 'pp-large', 'pp-huge']
# Reduced model of the parity fixtures (tests/fixtures/crossformer/NOTE.md); ACL only where acl=True.
FIXTURE_ARCH = dict(embed_dims=16, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8))
FIXTURE_GROUPS = {'g7': ((7, 7, 7, 7), (8, 4, 2, 1)), 'g5': ((5, 4, 3, 3), (4, 3, 2, 1))}
SMALL_ARCH = dict(embed_dims=32, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), acl=True)


def build(**overrides):
    cfg = dict(type='CrossFormer', arch=SMALL_ARCH, group_size=(4, 4, 3, 3), interval=(4, 2, 2, 1))
    cfg.update(overrides)
    return MODELS.build(cfg)


def fixture_input(h, w):
    gen = torch.Generator().manual_seed(h * 1000 + w)
    return torch.randn(1, 3, h, w, generator=gen)


# ------------------------------------------------------------------------------------------- contract
@pytest.mark.parametrize('arch', ARCHS)
def test_every_arch_builds_in_both_scopes_and_has_the_right_outputs(arch):
    model, _ = build_in_scope('mmdet', dict(type='CrossFormer', arch=arch))
    seg_model, _ = build_in_scope('mmseg', dict(type='CrossFormer', arch=arch))
    assert type(model) is type(seg_model) is cf.CrossFormer
    c = model.arch_settings['embed_dims']
    # 224 square, a non-square detection-like size, a size not divisible by 32
    check_outputs(model, [(224, 224), (192, 320), (100, 150)], [c, 2 * c, 4 * c, 8 * c])


def test_arg_errors_name_the_value():
    with pytest.raises(ValueError, match="grouping 'v2'"):
        build(grouping='v2')
    with pytest.raises(ValueError, match=r'group_size \(7, 7\)'):
        build(group_size=(7, 7))
    with pytest.raises(ValueError, match='missing keys'):
        MODELS.build(dict(type='CrossFormer', arch=dict(embed_dims=32)))


def test_arch_defaults_per_family():
    v1 = MODELS.build(dict(type='CrossFormer', arch='tiny'))
    pp = MODELS.build(dict(type='CrossFormer', arch='pp-huge'))
    assert (v1.grouping, pp.grouping) == ('v1', 'main')
    assert v1.group_size == pp.group_size == (7, 7, 7, 7) and v1.interval == pp.interval == (8, 4, 2, 1)
    assert not any(hasattr(b, 'ex_conv') for b in v1.modules() if isinstance(b, cf.CrossFormerBlock))
    # ACL after blocks 2, 5, ... of a stage, never after the last: ++-H depths (6, 6, 18, 2)
    acl = [[j for j, b in enumerate(stage.blocks) if b.with_acl] for stage in pp.layers]
    assert acl == [[2], [2], [2, 5, 8, 11, 14], []]
    # DPB hidden width is dim // 16 (the authors divide by 4 twice)
    assert pp.layers[0].blocks[0].attn.pos.pos_proj.out_features == 128 // 16


def test_out_indices_order_and_subset():
    model = build(out_indices=(3, 1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [(256, 2, 3), (64, 8, 12)]


# --------------------------------------------------------------------------------- grouping internals
@pytest.mark.parametrize('interval', [1, 2, 3])
def test_group_partition_round_trip(interval):
    x = torch.randn(2, 12, 18, 5)
    groups = cf.group_partition(x, 2, 3, interval)
    assert groups.shape == (2 * 12 * 18 // 6, 6, 5)
    torch.testing.assert_close(cf.group_reverse(groups, 2, 3, interval, 12, 18), x, rtol=0, atol=0)


def test_plans_follow_the_authors_rules():
    # v1 LDA: pad to a multiple of I, I*I groups spanning the map
    assert cf.plan_groups(50, 76, 7, 2, True, 'v1') == (25, 38, 2, 50, 76)
    # main LDA: pad to a multiple of G*I, G x G groups
    assert cf.plan_groups(50, 76, 7, 2, True, 'main') == (7, 7, 2, 56, 84)
    # SDA: pad to a multiple of G
    assert cf.plan_groups(50, 76, 7, 2, False, 'v1') == (7, 7, 1, 56, 77)
    # small maps (min side <= G): v1 SDA with G = min side, main one group of the max side
    assert cf.plan_groups(7, 10, 7, 1, True, 'v1') == (7, 7, 1, 7, 14)
    assert cf.plan_groups(7, 10, 7, 1, True, 'main') == (10, 10, 1, 10, 10)


def test_sdpa_matches_the_reference_attention_with_padding():
    model = build().eval()
    x = torch.randn(2, 3, 72, 100)  # padding in SDA and LDA at every stage
    with torch.no_grad():
        fused = model(x)
        with reference_paths():
            ref = model(x)
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_inference_chunking_matches_the_autograd_path(monkeypatch):
    model = build().eval()
    x = torch.randn(2, 3, 72, 100)
    with torch.enable_grad():
        full = model(x)
    monkeypatch.setattr(cf, 'INFERENCE_CHUNK_TOKENS', 100)  # several chunks per block
    with torch.no_grad():
        chunked = model(x)
    for a, b in zip(full, chunked):
        torch.testing.assert_close(a.detach(), b, rtol=1e-5, atol=1e-5)


def test_batch_elements_are_independent():
    model = build().eval()
    x = torch.randn(3, 3, 72, 100)
    with torch.no_grad():
        batched = model(x)
        single = model(x[1:2])
    for a, b in zip(batched, single):
        torch.testing.assert_close(a[1:2], b, rtol=1e-5, atol=1e-5)


def test_forward_is_stateless_across_sizes():
    """The authors' blocks switch to SDA for good after a small map; ours decide per call."""
    model = build().eval()
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        before = model(x)
        model(torch.randn(1, 3, 32, 48))
        after = model(x)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dpb_cache_in_eval_and_exact_in_training():
    model = build().eval()
    attn = model.layers[1].blocks[1].attn
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        first = model(x)
        assert attn._table_cache, 'eval forward did not cache the DPB table'
        second = model(x)
        for a, b in zip(first, second):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        attn.pos.pos3[2].bias.add_(1.0)  # a weight update (optimizer step / load_state_dict) in place
        changed = model(x)
        attn._table_cache.clear()
        fresh = model(x)
    torch.testing.assert_close(changed[1], fresh[1], rtol=0, atol=0)
    assert not torch.allclose(changed[1], first[1])
    # training: the table is recomputed and receives gradients
    model.train()
    projection_loss(model(x)).backward()
    assert attn.pos.pos_proj.weight.grad is not None and attn.pos.pos_proj.weight.grad.abs().max() > 1e-4
    assert not attn._table_cache


# ----------------------------------------------------------------------------- parity with the authors
def _fixture_model(branch, group):
    group_size, interval = FIXTURE_GROUPS[group]
    arch = dict(FIXTURE_ARCH, acl=branch == 'main')
    return MODELS.build(dict(type='CrossFormer', arch=arch, group_size=group_size, interval=interval,
                             grouping=branch)).eval()


@pytest.fixture(scope='module')
def dense_checkpoints(tmp_path_factory):
    """The fixture weights saved as mmdet checkpoints of the authors' dense models (``backbone.`` keys):
    CrossFormer++ (main) with the ACL weights, CrossFormer (v1) without them."""
    weights = torch.load(os.path.join(FIXTURES, 'dense_weights.pth'), weights_only=True)
    paths = {}
    for branch in ('v1', 'main'):
        path = tmp_path_factory.mktemp('crossformer') / f'mask_rcnn_crossformer_{branch}.pth'
        state_dict = {f'backbone.{k}': v.float() for k, v in weights.items() if branch == 'main' or '.ex_' not in k}
        torch.save({'meta': {}, 'state_dict': state_dict}, path)
        paths[branch] = str(path)
    return paths


@pytest.fixture(scope='module')
def dense_outputs():
    return torch.load(os.path.join(FIXTURES, 'dense_outputs.pth'), weights_only=True)


@pytest.mark.parametrize('branch', ['v1', 'main'])
def test_parity_with_the_authors_dense_backbone(branch, dense_checkpoints, dense_outputs):
    expected = dense_outputs[branch]
    checked = 0
    for group in FIXTURE_GROUPS:
        model = _fixture_model(branch, group)
        model.init_cfg = dict(type='Pretrained', checkpoint=dense_checkpoints[branch])
        model.init_weights()
        model.eval()
        for name, ref in expected.items():
            if not name.startswith(group + '_'):
                continue
            h, w = map(int, name.split('_')[1].split('x'))
            x = fixture_input(h, w)
            assert abs(x.sum().item() - dense_outputs['input_sums'][f'{h}x{w}']) < 1e-3, 'input RNG changed'
            with torch.no_grad():
                outs = model(x)
            for i, (ours, theirs) in enumerate(zip(outs, ref)):
                scale = theirs.abs().max().item()
                err = (ours - theirs).abs().max().item()
                assert err <= 1e-5 * max(scale, 1.0) + 1e-6, f'{branch} {name} stage {i}: {err} (scale {scale})'
            checked += 1
    assert checked == 4


def test_parity_fixtures_tell_the_groupings_apart(dense_checkpoints, dense_outputs):
    model = _fixture_model('main', 'g5')
    load_pretrained(model, dense_checkpoints['main'])
    for block in model.modules():
        if isinstance(block, cf.CrossFormerBlock):
            block.grouping = 'v1'
    model.eval()
    with torch.no_grad():
        outs = model(fixture_input(96, 160))
    assert not torch.allclose(outs[0], dense_outputs['main']['g5_96x160'][0], atol=1e-3)


# ------------------------------------------------------------------------------------ checkpoints
def _official_state_dict(arch):
    with open(os.path.join(FIXTURES, 'imagenet_key_layouts.json')) as f:
        shapes = json.load(f)[arch]
    return {k: (torch.zeros(s, dtype=torch.long) if k.endswith('relative_position_index') else torch.randn(s))
            for k, s in shapes.items()}


@pytest.mark.parametrize('arch', ['small', 'pp-small'])
def test_official_imagenet_checkpoint_loads(arch, tmp_path):
    state_dict = _official_state_dict(arch)
    path = tmp_path / 'official.pth'
    torch.save({'model': state_dict, 'epoch': 300}, path)
    model = MODELS.build(dict(type='CrossFormer', arch=arch, init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    own = model.state_dict()
    report = load_pretrained(model, str(path))
    assert not report.missing
    assert sorted(report.unexpected) == []  # classifier and v1 shape buffers are dropped by the converter
    assert len(report.loaded) == len(own)
    torch.testing.assert_close(model.layers[2].blocks[1].attn.pos.pos1[2].weight,
                               state_dict['layers.2.blocks.1.attn.pos.pos1.2.weight'])
    converted = convert_file('crossformer', str(path), model)
    assert converted['state_dict'].keys() == own.keys()


def test_wrong_checkpoints_raise(tmp_path):
    model = MODELS.build(dict(type='CrossFormer', arch='small'))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'stem.conv.weight': torch.zeros(3)}}, other)
    with pytest.raises(CheckpointError, match='not a crossformer checkpoint'):
        load_pretrained(model, str(other))
    small = tmp_path / 'small.pth'
    torch.save({'model': _official_state_dict('small')}, small)
    with pytest.raises(CheckpointError, match='wrong shape'):
        load_pretrained(MODELS.build(dict(type='CrossFormer', arch='large')), str(small))
    pp_small = tmp_path / 'pp_small.pth'
    torch.save({'model': _official_state_dict('pp-small')}, pp_small)
    # a CrossFormer++ checkpoint into a CrossFormer model of the same widths would lose its ACL layers
    pp_into_v1 = MODELS.build(dict(type='CrossFormer', arch=dict(embed_dims=64, depths=(2, 2, 18, 2),
                                                                   num_heads=(2, 4, 8, 16))))
    with pytest.raises(CheckpointError, match='amplitude cooling'):
        load_pretrained(pp_into_v1, str(pp_small))
    # a CrossFormer checkpoint into a CrossFormer++ model lacks the ACL weights
    missing_acl = tmp_path / 'no_acl.pth'
    torch.save({k: v for k, v in _official_state_dict('pp-small').items() if '.ex_' not in k}, missing_acl)
    with pytest.raises(CheckpointError, match='missing'):
        load_pretrained(MODELS.build(dict(type='CrossFormer', arch='pp-small')), str(missing_acl))
