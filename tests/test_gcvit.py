"""GCViT backbone: CONTRACT checks, parity with the authors' code, checkpoint loading."""
import json
import os

import pytest
import torch

import backbone_checks as checks
from mmvit_backbones.checkpoint.loader import CheckpointError, load_pretrained
from mmvit_backbones.models.backbones.gcvit import GCViT, WindowAttention
from mmvit_backbones.utils.fast_paths import reference_paths

FIX = os.path.join(os.path.dirname(__file__), 'fixtures', 'gcvit')
# the reduced arch of the parity fixtures (see fixtures/gcvit/NOTE.md)
FIXTURE_ARCH = dict(embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), mlp_ratio=2, layer_scale=1e-5)
SMALL_ARCH = dict(embed_dims=16, depths=(1, 2, 2, 2), num_heads=(1, 2, 4, 8), mlp_ratio=2, layer_scale=1e-5)
ARCH_CHANNELS = {'xxtiny': 64, 'xtiny': 64, 'tiny': 64, 'tiny2': 64, 'small': 96, 'small2': 96, 'base': 128,
                 'large': 192}


def build(**kwargs):
    kwargs.setdefault('arch', SMALL_ARCH)
    kwargs.setdefault('window_size', 7)
    return GCViT(**kwargs)


def fixture(name):
    return torch.load(os.path.join(FIX, name), weights_only=True)


# ------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize('arch', sorted(ARCH_CHANNELS))
def test_arch_zoo_builds_from_both_scopes(arch):
    cls = checks.ROOT_MODELS.get('GCViT')
    for scope in ('mmdet', 'mmseg'):
        with torch.device('meta'):  # structure only: full-size weights are not needed here
            model, _ = checks.build_in_scope(scope, dict(type='GCViT', arch=arch))
        assert type(model) is cls
    c = ARCH_CHANNELS[arch]
    assert model.embed_dims == [c, 2 * c, 4 * c, 8 * c]
    assert model.window_size == (24, 24, 24, 24)
    assert [len(s.blocks) for s in model.levels] == list(GCViT.arch_zoo[arch]['depths'])


def test_outputs_real_arch():
    checks.check_outputs(GCViT('xxtiny'), [(224, 224), (100, 150)], [64, 128, 256, 512])


def test_outputs_sizes():
    model = build(window_size=24)
    checks.check_outputs(model, [(224, 224), (96, 160), (100, 150), (32, 32)], [16, 32, 64, 128])
    checks.check_outputs(build(out_indices=(1, 3)), [(100, 150)], [16, 32, 64, 128], out_indices=(1, 3))


def test_bad_arguments():
    with pytest.raises(ValueError, match='window_size'):
        build(window_size=(7, 7))
    with pytest.raises(ValueError, match='global_query_split'):
        build(global_query_split='nchw')
    with pytest.raises(ValueError, match='missing keys'):
        GCViT(arch=dict(embed_dims=16))


def test_frozen_stages_include_the_downsampling_into_the_stage():
    # what the authors' `_freeze_stages` meant (it indexes a missing `self.network`): stem, then
    # everything that computes stage i's output, including the downsampling into stage i
    model = build(frozen_stages=2)
    model.train()
    assert not any(p.requires_grad for p in model.levels[0].downsample.parameters())
    assert all(p.requires_grad for p in model.levels[1].downsample.parameters())


def test_no_unused_parameters():
    """Output norms exist only for returned stages; stages after the last one are not built."""
    for out_indices in [(1, 2, 3), (0, 1)]:
        model = build(out_indices=out_indices)
        assert {n.split('.')[0] for n, _ in model.named_parameters() if n.startswith('norm')} == \
            {f'norm{i}' for i in out_indices}
        sum(o.sum() for o in model(torch.randn(1, 3, 64, 64))).backward()
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        assert not unused, unused
    assert len(build(out_indices=(0, 1)).levels) == 2


@pytest.mark.parametrize('is_global', [False, True])
def test_sdpa_matches_reference(is_global):
    attn = WindowAttention(32, 4, 5, is_global).eval()
    torch.nn.init.normal_(attn.relative_position_bias_table)
    windows = torch.randn(6, 25, 32)
    q = torch.randn(2, 4, 25, 8) if is_global else None
    with torch.no_grad():
        with reference_paths():  # softmax(q k^T / sqrt(d) + B) v written out
            reference = attn(windows, q)
        torch.testing.assert_close(attn(windows, q), reference, rtol=1e-5, atol=1e-5)
    bias = attn.relative_position_bias(torch.float32)  # Swin's index: bias[h, i, j] = table[rel(i, j), h]
    assert bias.shape == (4, 25, 25)
    assert torch.equal(bias[:, 0, 0], attn.relative_position_bias_table[(5 - 1) * 9 + (5 - 1)])
    assert torch.equal(bias[:, 0, 24], attn.relative_position_bias_table[0])  # (dh, dw) = (-4, -4)


# -------------------------------------------------------------------- parity with the authors
def _load_fixture_model(window, path='cls_state.pt', split='channels_last'):
    model = GCViT(arch=FIXTURE_ARCH, window_size=window, drop_path_rate=0.0, global_query_split=split)
    load_pretrained(model, os.path.join(FIX, path))
    return model.eval()


@pytest.mark.parametrize('tag,window', [('w24', 24), ('w7', (7, 7, 14, 7))])
def test_parity_imagenet_layout(tag, window):
    """The authors' detection backbone built with `pretrained=<ImageNet-layout file>` (tables resized
    to the dense window at construction) vs ours loading the same file through init_cfg."""
    model = _load_fixture_model(window)
    model.load_state_dict(fixture('dense_norms.pt'), strict=False)  # their fresh output norms
    feats = fixture('dense_features.pt')
    cases = [k for k in feats if k.startswith(tag)]
    assert len(cases) == 4
    for case in cases:
        with torch.no_grad():
            outs = model(feats[case]['x'].float())
        for ours, theirs in zip(outs, feats[case]['outs']):
            assert ours.shape == theirs.shape, case
            torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5 * theirs.abs().max().item(), msg=case)


def test_parity_dense_checkpoint_via_init_cfg():
    """An mmdet checkpoint of the authors' dense backbone (`backbone.` keys, 47x47 tables)."""
    model = GCViT(arch=FIXTURE_ARCH, drop_path_rate=0.0,
                  init_cfg=dict(type='Pretrained', checkpoint=os.path.join(FIX, 'dense_state.pt')))
    model.init_weights()
    model.eval()
    feats = fixture('dense_features.pt')
    for case in ('w24/64x96', 'w24/130x70'):
        with torch.no_grad():
            outs = model(feats[case]['x'].float())
        for ours, theirs in zip(outs, feats[case]['outs']):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5 * theirs.abs().max().item())


def _logits(model, head_sd, x):
    """The authors' classifier on our stage-3 output: norm -> global average pool -> head."""
    model.load_state_dict({'norm3.weight': head_sd['norm.weight'], 'norm3.bias': head_sd['norm.bias']},
                          strict=False)
    with torch.no_grad():
        feat = model(x)[-1].mean((2, 3))
    return feat @ head_sd['head.weight'].t() + head_sd['head.bias']


def test_weight_generations():
    """Both global-query head splits reproduce the code their weights were trained with (the
    2022-07-26 release vs the fixed code), on the same weights, at the classification setting."""
    ref = fixture('cls_logits.pt')
    sd = fixture('cls_state.pt')
    x = ref['x'].float()
    got = {}
    for split in ('channels_last', 'channels_first'):
        model = _load_fixture_model((7, 7, 14, 7), split=split)
        assert model.global_query_split == split
        got[split] = _logits(model, sd, x)
        torch.testing.assert_close(got[split], ref[f'logits_{split}'], rtol=0, atol=1e-5)
    assert (got['channels_last'] - got['channels_first']).abs().max() > 1e-3


def test_own_checkpoint_restores_split(tmp_path):
    model = build(global_query_split='channels_first')
    path = str(tmp_path / 'ours.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in model.state_dict().items()}}, path)
    fresh = build()
    assert fresh.global_query_split == 'channels_last'
    load_pretrained(fresh, path)
    assert fresh.global_query_split == 'channels_first'
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(model.eval()(x), fresh.eval()(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_official_imagenet_key_layout(arch):
    """Every tensor of the official ImageNet model (key/shape list from their `models/gc_vit.py`)
    converts onto ours; only the new output norms are missing; tables resized 13->47 and 27->47."""
    from mmvit_backbones.checkpoint.gcvit import convert
    shapes = json.load(open(os.path.join(FIX, 'official_keys.json')))[arch]
    state_dict = {k: torch.zeros(s, dtype=torch.long if k.endswith('index') else torch.float)
                  for k, s in shapes.items()}
    with torch.device('meta'):
        model = GCViT(arch)
    converted = convert(state_dict, model)
    own = model.state_dict()
    assert set(own) - set(converted) == {f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')}
    assert set(converted) - set(own) == set()
    for key, value in converted.items():
        assert tuple(value.shape) == tuple(own[key].shape), key


def test_bad_checkpoints(tmp_path):
    model = build()
    first_release = {k.replace('q_global_gen.to_q_global', 'to_q_global'): v for k, v in model.state_dict().items()}
    torch.save(first_release, tmp_path / 'old.pth')
    with pytest.raises(CheckpointError, match='first release'):
        load_pretrained(model, str(tmp_path / 'old.pth'))
    torch.save({'model': {'layers.0.weight': torch.zeros(2)}}, tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match='not a gcvit checkpoint'):
        load_pretrained(model, str(tmp_path / 'other.pth'))
    partial = {k: v for k, v in model.state_dict().items() if 'levels.1.blocks.0' not in k}
    torch.save(partial, tmp_path / 'partial.pth')
    with pytest.raises(CheckpointError, match='missing'):
        load_pretrained(model, str(tmp_path / 'partial.pth'))
