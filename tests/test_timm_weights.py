"""timm's and mmpretrain's files of GCViT, Twins and XCiT: ``safetensors`` in their key layouts load like the
authors' checkpoints, through ``create_backbone``, ``init_cfg`` and a URL, and give the features their own
models compute with the same weights.

The key names and shapes come from the released models (``tests/fixtures/<family>/timm_*_keys.json``,
``mmpretrain_*_keys.json``); the weights are the deterministic ones of :mod:`seeded_weights`; the expected
features (``*_features.json``) were computed by timm's ``features_only`` model / mmpretrain's backbone on those
weights outside this repository (see the fixtures' NOTE.md). Where the two define different functions the
fixtures say what was compared (timm's classifier norm after GCViT's last stage, the dense SVT's stage norms).
"""
import json
import os

import pytest
import torch
from mmengine.registry import MODELS
from safetensors.torch import save_file

from mmvit_backbones import create_backbone
from mmvit_backbones.checkpoint import get_converter, load_pretrained
from seeded_weights import (FIXTURES, load_key_fixture, seeded_input, seeded_state_dict, summarize,
                            summary_tolerance)
from test_checkpoint_remote import _Server

# (family, key fixture, feature fixture)
CASES = {
    'timm-gcvit_xxtiny': ('gcvit', 'timm_gcvit_xxtiny_keys.json', 'timm_gcvit_xxtiny_features.json'),
    'timm-twins_pcpvt_small': ('twins', 'timm_twins_pcpvt_small_keys.json', 'timm_twins_pcpvt_small_features.json'),
    'timm-twins_svt_small': ('twins', 'timm_twins_svt_small_keys.json', 'timm_twins_svt_small_features.json'),
    'timm-xcit_nano_12_p16_224': ('xcit', 'timm_xcit_nano_12_p16_224_keys.json',
                                  'timm_xcit_nano_12_p16_224_features.json'),
    'mmpretrain-twins-pcpvt-small': ('twins', 'mmpretrain_twins-pcpvt-small_3rdparty_8xb128_in1k_keys.json',
                                     'mmpretrain_twins-pcpvt-small_3rdparty_8xb128_in1k_features.json'),
    'mmpretrain-twins-svt-small': ('twins', 'mmpretrain_twins-svt-small_3rdparty_8xb128_in1k_keys.json',
                                   'mmpretrain_twins-svt-small_3rdparty_8xb128_in1k_features.json'),
    'mmpretrain-xcit-nano-12-p16': ('xcit', 'mmpretrain_xcit-nano-12-p16_3rdparty_in1k_keys.json',
                                    'mmpretrain_xcit-nano-12-p16_3rdparty_in1k_features.json'),
}
TIMM_CASES = [name for name in CASES if name.startswith('timm-')]
TYPES = {'gcvit': 'GCViT', 'twins-pcpvt': 'TwinsPCPVT', 'twins-svt': 'TwinsSVT', 'xcit': 'XCiT'}


def _expected(case: str) -> dict:
    family, _, features = CASES[case]
    with open(os.path.join(FIXTURES, family, features)) as f:
        return json.load(f)


def _write(case: str, path) -> dict:
    """The case's seeded weights in its key layout, as a safetensors file; returns the state dict."""
    family, keys, _ = CASES[case]
    state_dict = seeded_state_dict(load_key_fixture(family, keys)['keys'])
    save_file(state_dict, str(path))
    return state_dict


def stage_features(model, x: torch.Tensor):
    """The stage maps the references compute, before what the dense backbone adds on top: GCViT's output norms
    (``levels.i`` last block), the Twins stage norms (inputs of ``stages.i.norm``) and XCiT's pyramid (the
    tapped blocks). Read through forward hooks, as NCHW."""
    h, w = x.shape[-2:]
    modules, feats, hooks = dict(model.named_modules()), {}, []

    def keep(i, value):
        feats[i] = value

    if model.family == 'gcvit':  # blocks work on NHWC maps
        for i, level in enumerate(model.levels):
            hooks.append(level.blocks[-1].register_forward_hook(
                lambda m, a, out, i=i: keep(i, out.permute(0, 3, 1, 2))))
    elif model.family == 'twins':  # tokens (B, N, C)
        for i in range(len(model.stages)):
            s = 4 * 2 ** i
            hooks.append(modules[f'stages.{i}.norm'].register_forward_pre_hook(
                lambda m, a, i=i, s=s: keep(i, a[0].transpose(1, 2).unflatten(2, (h // s, w // s)))))
    else:  # XCiT: tokens (B, N, C) at the patch stride
        p = model.patch_size
        for i, tap in enumerate(model.tap_blocks):
            hooks.append(model.blocks[tap].register_forward_hook(
                lambda m, a, out, i=i: keep(i, out.transpose(1, 2).unflatten(2, (h // p, w // p)))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [feats[i] for i in sorted(feats)]


def _assert_features(model, expected: dict, label: str) -> None:
    x = seeded_input(*expected['input'][-2:])
    got = stage_features(model.eval(), x)
    assert len(got) == len(expected['features']), label
    for i, (feature, want) in enumerate(zip(got, expected['features'])):
        assert list(feature.shape) == want['shape'], f'{label} map {i}: {tuple(feature.shape)} vs {want["shape"]}'
        rtol, atol = summary_tolerance(want)
        flat = feature.double().flatten()
        torch.testing.assert_close(flat[want['positions']], torch.tensor(want['values'], dtype=torch.float64),
                                   rtol=rtol, atol=atol, msg=lambda m: f'{label} map {i}: {m}')
        mine = summarize(feature)
        for stat in ('mean', 'std', 'abs_mean'):
            assert abs(mine[stat] - want[stat]) <= atol + rtol * abs(want[stat]), (label, i, stat, mine[stat], want)


@pytest.mark.parametrize('case', sorted(CASES))
def test_features_equal_the_reference_on_the_same_weights(tmp_path, case):
    """timm's ``features_only`` model (mmpretrain's backbone) and ours, loaded with the same safetensors file in
    their key layout, compute the same stage maps (float32 rounding)."""
    expected = _expected(case)
    path = tmp_path / f'{case}.safetensors'
    _write(case, path)
    model = create_backbone(expected['ours'], pretrained=str(path), **expected['ours_kwargs'])
    _assert_features(model, expected, case)


def _backbone_type(name: str) -> str:
    return next(t for prefix, t in sorted(TYPES.items(), key=lambda kv: -len(kv[0])) if name.startswith(prefix))


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home'


@pytest.mark.parametrize('case', TIMM_CASES)
def test_timm_safetensors_through_init_cfg_and_a_url(tmp_path, torch_home, case):
    """The same file through ``init_cfg`` (a path, then a loopback URL cached in torch hub's cache): the
    same tensors as through ``create_backbone``. One stage is built, as a detector with ``out_indices=(0,)``
    would: the later stages of the file are reported as unused, not an error."""
    expected, family = _expected(case), CASES[case][0]
    path = tmp_path / f'{case}.safetensors'
    _write(case, path)
    kwargs = dict(expected['ours_kwargs'], out_indices=(0, ))
    arch = expected['ours'][len(next(p for p in sorted(TYPES, key=len, reverse=True)
                                     if expected['ours'].startswith(p))) + 1:]
    reference = create_backbone(expected['ours'], pretrained=str(path), **kwargs).state_dict()
    server = _Server({'/weights/model.safetensors': path.read_bytes()})
    try:
        for checkpoint in (str(path), server.url + '/weights/model.safetensors'):
            model = MODELS.build(dict(type=_backbone_type(expected['ours']), arch=arch,
                                      init_cfg=dict(type='Pretrained', checkpoint=checkpoint), **kwargs))
            model.init_weights()
            for key, value in reference.items():  # all but what the file cannot hold (random init)
                if not get_converter(family).allow_missing(key):
                    assert torch.equal(model.state_dict()[key], value), (checkpoint, key)
    finally:
        server.stop()
    assert server.requests == ['/weights/model.safetensors']
    # a generic file name is cached with its folder's name in front ('weights'): no clash between models
    assert (torch_home / 'hub' / 'checkpoints' / 'weights_model.safetensors').is_file()


def test_timm_gcvit_layer_scale_and_split(tmp_path):
    """timm's GC ViT-S keys (layer scale ``ls1/ls2.gamma``, SE convs, downsample moved to the next stage) land
    on the authors' names; a timm file sets the channels-last global-query split whatever the constructor says."""
    state_dict = _write('timm-gcvit_xxtiny', tmp_path / 'xxtiny.safetensors')
    keys = load_key_fixture('gcvit', 'timm_gcvit_small_keys.json')['keys']
    small = seeded_state_dict([k for k in keys if k[0].startswith(('stem.', 'stages.0.', 'stages.1.'))])
    save_file(small, str(tmp_path / 'small.safetensors'))
    model = create_backbone('gcvit-small', out_indices=(0, 1), global_query_split='channels_first')
    report = load_pretrained(model, str(tmp_path / 'small.safetensors'))
    assert model.global_query_split == 'channels_last'
    assert sorted(report.missing) == ['norm0.bias', 'norm0.weight', 'norm1.bias', 'norm1.weight']
    own = model.state_dict()
    assert torch.equal(own['levels.0.blocks.0.gamma1'], small['stages.0.blocks.0.ls1.gamma'])
    assert torch.equal(own['levels.0.blocks.2.gamma2'], small['stages.0.blocks.2.ls2.gamma'])
    assert torch.equal(own['levels.0.downsample.reduction.weight'], small['stages.1.downsample.reduction.weight'])
    se = small['stages.0.global_block.blocks.conv1.se.fc1.weight']
    assert torch.equal(own['levels.0.q_global_gen.to_q_global.0.conv.2.fc.0.weight'], se.flatten(1))
    assert torch.equal(own['patch_embed.conv_down.conv.3.weight'], small['stem.down.conv_block.conv_pw.weight'])
    assert 'stages.3.norm.weight' in state_dict  # timm's classifier norm: reported, not loaded (xxtiny file)


def test_fixtures_record_where_they_come_from():
    for family, keys, features in CASES.values():
        note = open(os.path.join(FIXTURES, family, 'NOTE.md')).read()
        assert keys in note and features in note, (family, keys)
