"""Twins (PCPVT / SVT): CONTRACT checks, parameter counts, parity with the authors' dense code, checkpoints."""
import json
import os

import pytest
import torch
from backbone_checks import check_outputs, check_registry, count_params
from mmengine.registry import MODELS

from mmvit_backbones.checkpoint import CheckpointError, get_converter, load_pretrained
from mmvit_backbones.models.backbones.twins import LocallyGroupedAttention, TwinsPCPVT, TwinsSVT

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'twins')

# The reduced archs of the parity fixtures (tests/fixtures/twins/NOTE.md).
TINY = {
    'TwinsPCPVT': dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[8, 8, 4, 4],
                       depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1]),
    'TwinsSVT': dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[4, 4, 4, 4],
                     depths=[2, 2, 3, 2], sr_ratios=[8, 4, 2, 1]),
}
CLASSES = {'TwinsPCPVT': TwinsPCPVT, 'TwinsSVT': TwinsSVT}

# n_parameters of the authors' ImageNet models (logs/*.txt) and the ImageNet function names.
IMAGENET = {
    ('TwinsPCPVT', 'small'): ('pcpvt_small_v0', 24_106_216),
    ('TwinsPCPVT', 'base'): ('pcpvt_base_v0', 43_828_456),
    ('TwinsPCPVT', 'large'): ('pcpvt_large_v0', 60_989_672),
    ('TwinsSVT', 'small'): ('alt_gvt_small', 24_060_776),
    ('TwinsSVT', 'base'): ('alt_gvt_base', 56_070_952),
    ('TwinsSVT', 'large'): ('alt_gvt_large', 99_271_400),
}


def tiny(type_name, **kwargs):
    return CLASSES[type_name](arch=TINY[type_name], **kwargs)


def dense_param_count(type_name, imagenet_count, dims):
    """The authors' dense backbone without the unused ImageNet head (Linear(C4, 1000)) and final norm,
    plus SVT's new per-stage norms (``norm_list``)."""
    count = imagenet_count - (dims[-1] * 1000 + 1000) - 2 * dims[-1]
    return count + (2 * sum(dims) if type_name == 'TwinsSVT' else 0)


# ----------------------------------------------------------------------------------------- CONTRACT
@pytest.mark.parametrize('type_name', list(CLASSES))
def test_registry(type_name):
    check_registry(type_name, TINY[type_name])


@pytest.mark.parametrize('type_name,arch', list(IMAGENET))
def test_arch_params_and_shapes(type_name, arch):
    model = MODELS.build(dict(type=type_name, arch=arch))
    fn, imagenet_count = IMAGENET[(type_name, arch)]
    assert count_params(model) == dense_param_count(type_name, imagenet_count, model.embed_dims)
    check_outputs(model, [(224, 224), (64, 96), (100, 77)], model.embed_dims)


@pytest.mark.parametrize('type_name', list(CLASSES))
def test_outputs_any_size(type_name):
    model = tiny(type_name)
    check_outputs(model, [(32, 32), (32, 200), (97, 33), (150, 113), (224, 224)], TINY[type_name]['embed_dims'])
    model = tiny(type_name, out_indices=(3, 1))
    check_outputs(model, [(64, 96)], TINY[type_name]['embed_dims'], out_indices=(3, 1))


@pytest.mark.parametrize('type_name', list(CLASSES))
def test_bad_inputs(type_name):
    with pytest.raises(ValueError, match='lsa_mask'):
        tiny(type_name, lsa_mask='sometimes')
    with pytest.raises(ValueError, match='attn_impl'):
        tiny(type_name, attn_impl='flash3')
    with pytest.raises(ValueError, match='depths'):
        CLASSES[type_name](arch=dict(TINY[type_name], depths=[2, 2, 2]))


def test_default_drop_path_is_the_authors_dense_value():
    model = TwinsSVT(arch='small')
    assert model.drop_path_rate == 0.2
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    assert max(rates) == pytest.approx(0.2)
    assert not any(type(m).__name__ == 'DropPath' for m in TwinsSVT(arch='small', drop_path_rate=0.0).modules())


def test_svt_variant_structure():
    """SVT alternates LSA (even blocks) and GSA (odd blocks) and norms every stage; PCPVT does neither."""
    svt, pcpvt = tiny('TwinsSVT'), tiny('TwinsPCPVT')
    for stage in svt.stages:
        kinds = [type(b.attn).__name__ for b in stage.blocks]
        assert kinds[0::2] == ['LocallyGroupedAttention'] * len(kinds[0::2])
        assert kinds[1::2] == ['GlobalSubsampledAttention'] * len(kinds[1::2])
        assert isinstance(stage.norm, torch.nn.LayerNorm) and stage.norm.eps == 1e-6
    for stage in pcpvt.stages:
        assert {type(b.attn).__name__ for b in stage.blocks} == {'GlobalSubsampledAttention'}
        assert isinstance(stage.norm, torch.nn.Identity)
    eps = {n: m.eps for n, m in svt.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps['stages.0.blocks.0.norm1'] == 1e-6 and eps['stages.0.patch_embed.norm'] == 1e-5
    assert eps['stages.0.blocks.1.attn.norm'] == 1e-5


@pytest.mark.parametrize('mode', ['correct', 'official', 'none'])
def test_sdpa_matches_reference(mode):
    torch.manual_seed(0)
    sdpa = tiny('TwinsSVT', lsa_mask=mode).eval()
    ref = tiny('TwinsSVT', lsa_mask=mode, attn_impl='reference').eval()
    ref.load_state_dict(sdpa.state_dict())
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        for a, b in zip(sdpa(x), ref(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_lsa_mask_modes():
    attn = LocallyGroupedAttention(8, 2, 7, 'correct')
    assert attn.key_mask(7, 7, 0, 0, torch.device('cpu')) is None
    mask = attn.key_mask(7, 5, 0, 2, torch.device('cpu'))  # one window, two padded columns
    assert mask.shape == (1, 1, 1, 49) and int(mask.sum()) == 35
    assert attn.key_mask(7, 5, 0, 2, torch.device('cpu')) is mask  # cached per size
    official = LocallyGroupedAttention(8, 2, 7, 'official')
    assert official.key_mask(7, 5, 0, 2, torch.device('cpu')) is None  # the authors' `-0:` bug
    assert int(official.key_mask(5, 5, 2, 2, torch.device('cpu')).sum()) == 25
    assert LocallyGroupedAttention(8, 2, 7, 'none').key_mask(5, 5, 2, 2, torch.device('cpu')) is None


# ------------------------------------------------------------------------------- parity (fixtures)
def _load_fixture(name):
    return torch.load(os.path.join(FIXTURES, f'{name}.pth'), weights_only=True)


def _fixture_input(case):
    b, c, h, w = case['shape']
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(case['seed']))
    assert abs(float(x.double().sum()) - case['input_sum']) < 1e-6, 'torch RNG changed: regenerate the fixtures'
    return x


def _model_from_fixture(type_name, state_dict, **kwargs):
    model = tiny(type_name, **kwargs)
    converter = get_converter('twins')
    converted = converter.convert(state_dict, model)
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in converted.items() if k in model.state_dict()}, strict=False)
    assert not missing
    assert sorted(set(converted) - set(model.state_dict())) == ['head.bias', 'head.weight', 'norm.bias',
                                                                 'norm.weight']
    return model.eval()


def _max_rel_err(outs, expected):
    return max(float((o - e).abs().max() / e.abs().max()) for o, e in zip(outs, expected))


# (fixture, authors' code, our lsa_mask that reproduces it)
PARITY = [('pcpvt', 'seg', 'correct'), ('pcpvt', 'det', 'correct'), ('svt', 'seg', 'official'),
          ('svt', 'det', 'none')]


@pytest.mark.parametrize('name,code,mode', PARITY)
def test_parity_with_authors_dense_code(name, code, mode):
    data = _load_fixture(name)
    type_name = 'TwinsPCPVT' if name == 'pcpvt' else 'TwinsSVT'
    model = _model_from_fixture(type_name, data['state_dict'], lsa_mask=mode)
    for case in data['cases'][code]:
        with torch.no_grad():
            outs = model(_fixture_input(case))
        assert [tuple(o.shape) for o in outs] == [tuple(e.shape) for e in case['outputs']]
        assert _max_rel_err(outs, case['outputs']) < 1e-5, case['shape']


def test_correct_mask_equals_seg_code_except_on_one_sided_padding():
    """Default masking equals the authors' seg code when both or no sides are padded (96x160, 224x224) and
    deliberately differs where their `-0:` slice disables the mask (224x256: only the right is padded)."""
    data = _load_fixture('svt')
    model = _model_from_fixture('TwinsSVT', data['state_dict'], lsa_mask='correct')
    for case in data['cases']['seg']:
        with torch.no_grad():
            err = _max_rel_err(model(_fixture_input(case)), case['outputs'])
        if tuple(case['shape'][2:]) == (224, 256):
            assert err > 1e-3
        else:
            assert err < 1e-5, case['shape']


# ---------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('type_name,arch', list(IMAGENET))
def test_imagenet_key_layout_converts(type_name, arch):
    """The released ImageNet state dicts' keys and shapes map onto every parameter of the dense model,
    except SVT's new stage norms; only the classification `norm`/`head` are left over."""
    with open(os.path.join(FIXTURES, 'official_imagenet_keys.json')) as f:
        layout = json.load(f)[IMAGENET[(type_name, arch)][0]]
    with torch.device('meta'):
        model = CLASSES[type_name](arch=arch)
        state_dict = {k: torch.empty(shape) for k, shape in layout.items()}
    converter = get_converter('twins')
    assert converter.detect(state_dict)
    converted = converter.convert(state_dict, model)
    own = model.state_dict()
    assert sorted(set(converted) - set(own)) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    missing = sorted(set(own) - set(converted))
    assert all(converter.allow_missing(k) for k in missing)
    assert len(missing) == (8 if type_name == 'TwinsSVT' else 0)
    for key in own:
        if key in converted:
            assert converted[key].shape == own[key].shape, key


def _expected_outputs(name='svt', code='det'):
    data = _load_fixture(name)
    return data, data['cases'][code][0]


@pytest.mark.parametrize('container', ['raw', 'model', 'state_dict', 'state_dict_ema'])
@pytest.mark.parametrize('prefix', ['', 'backbone.', 'module.backbone.'])
def test_checkpoint_containers(tmp_path, container, prefix):
    data, case = _expected_outputs()
    state_dict = {prefix + k: v for k, v in data['state_dict'].items()}
    ckpt = state_dict if container == 'raw' else {container: state_dict, 'meta': {'epoch': 1}}
    if prefix:  # a detector checkpoint also holds neck/head weights
        ckpt_sd = ckpt if container == 'raw' else ckpt[container]
        ckpt_sd[prefix.replace('backbone.', '') + 'neck.lateral_convs.0.conv.weight'] = torch.zeros(4, 4, 1, 1)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    model = tiny('TwinsSVT', lsa_mask='none', init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        assert _max_rel_err(model(_fixture_input(case)), case['outputs']) < 1e-5


def test_own_checkpoint_roundtrip_and_report(tmp_path):
    data, case = _expected_outputs()
    model = tiny('TwinsSVT', lsa_mask='none')
    report = load_pretrained(model, _save(tmp_path / 'official.pth', data['state_dict']))
    assert len(report.loaded) == len(model.state_dict()) and not report.missing
    assert sorted(report.unexpected) == ['head.bias', 'head.weight', 'norm.bias', 'norm.weight']
    path = _save(tmp_path / 'ours.pth', {'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()}})
    again = tiny('TwinsSVT', lsa_mask='none', init_cfg=dict(type='Pretrained', checkpoint=path))
    again.init_weights()
    again.eval()
    with torch.no_grad():
        assert _max_rel_err(again(_fixture_input(case)), case['outputs']) < 1e-5


def test_imagenet_checkpoint_lacks_only_svt_stage_norms(tmp_path):
    data, _ = _expected_outputs()
    imagenet = {k: v for k, v in data['state_dict'].items() if not k.startswith('norm_list.')}
    model = tiny('TwinsSVT')
    report = load_pretrained(model, _save(tmp_path / 'in1k.pth', {'model': imagenet}))
    assert sorted(report.missing) == sorted(f'stages.{i}.norm.{p}' for i in range(4) for p in ('weight', 'bias'))
    assert torch.equal(model.stages[0].norm.weight, torch.ones(8))  # left at the LayerNorm init


def _save(path, obj):
    torch.save(obj, str(path))
    return str(path)


def test_checkpoint_errors(tmp_path):
    data, _ = _expected_outputs('svt')
    pcpvt_data, _ = _expected_outputs('pcpvt', 'seg')
    # SVT weights into a PCPVT model and the reverse
    with pytest.raises(CheckpointError, match='Twins-SVT checkpoint but the model is TwinsPCPVT'):
        load_pretrained(tiny('TwinsPCPVT'), _save(tmp_path / 'svt.pth', data['state_dict']))
    with pytest.raises(CheckpointError, match='Twins-PCPVT checkpoint but the model is TwinsSVT'):
        load_pretrained(tiny('TwinsSVT'), _save(tmp_path / 'pcpvt.pth', pcpvt_data['state_dict']))
    # wrong arch: shapes do not fit
    with pytest.raises(CheckpointError, match='wrong shape'):
        load_pretrained(TwinsSVT(arch='small'), str(tmp_path / 'svt.pth'))
    # missing backbone parameters
    partial_sd = {k: v for k, v in data['state_dict'].items() if not k.startswith('blocks.3.')}
    with pytest.raises(CheckpointError, match='missing'):
        load_pretrained(tiny('TwinsSVT'), _save(tmp_path / 'partial.pth', partial_sd))
    # another family's checkpoint (GCViT-like keys)
    gcvit = {'patch_embed.proj.weight': torch.zeros(8, 3, 3, 3), 'patch_embed.conv_down.conv.0.weight':
             torch.zeros(8, 1, 3, 3), 'levels.0.blocks.0.attn.qkv.weight': torch.zeros(24, 8),
             'levels.0.blocks.0.attn.relative_position_bias_table': torch.zeros(169, 2),
             'levels.0.downsample.reduction.0.weight': torch.zeros(8, 1, 3, 3), 'head.weight': torch.zeros(10, 8)}
    with pytest.raises(CheckpointError, match='not a twins checkpoint'):
        load_pretrained(tiny('TwinsSVT'), _save(tmp_path / 'gcvit.pth', {'state_dict': gcvit}))
    # not a checkpoint at all
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='junk.pth'):
        load_pretrained(tiny('TwinsSVT'), str(tmp_path / 'junk.pth'))
    with pytest.raises(FileNotFoundError):
        load_pretrained(tiny('TwinsSVT'), str(tmp_path / 'absent.pth'))


@pytest.mark.parametrize('type_name', list(CLASSES))
def test_mmseg_checkpoint_layout(tmp_path, type_name):
    """A checkpoint of mmseg 1.x's own PCPVT/SVT (twins2mmseg layout) loads and gives mmseg's features."""
    from mmseg.models.backbones.twins import PCPVT, SVT
    arch = TINY[type_name]
    kwargs = dict(embed_dims=arch['embed_dims'], num_heads=arch['num_heads'], mlp_ratios=arch['mlp_ratios'],
                  depths=arch['depths'], sr_ratios=arch['sr_ratios'], qkv_bias=True, drop_path_rate=0.0)
    torch.manual_seed(0)
    theirs = (PCPVT(**kwargs) if type_name == 'TwinsPCPVT' else SVT(windiow_sizes=[7] * 4, **kwargs))
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for name, m in theirs.named_modules():  # mmseg uses eps 1e-5 in the blocks; the authors (and we) 1e-6
        if name.endswith(('norm1', 'norm2')) or name.startswith('norm_list.'):
            m.eps = 1e-6
    theirs.eval()
    path = _save(tmp_path / 'mmseg.pth', {'state_dict': {'backbone.' + k: v for k, v in theirs.state_dict().items()},
                                          'meta': {}})
    ours = tiny(type_name, lsa_mask='official', init_cfg=dict(type='Pretrained', checkpoint=path))
    ours.init_weights()
    ours.eval()
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert _max_rel_err(ours(x), theirs(x)) < 1e-5
