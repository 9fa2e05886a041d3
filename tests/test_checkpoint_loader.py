"""The family-independent loader: containers, prefixes, report, and clear errors."""
import os

import pytest
import torch
from torch import nn

from mmvit_backbones.checkpoint import CheckpointError, load_pretrained, register_converter
from mmvit_backbones.checkpoint.registry import CONVERTERS, is_classifier_key
from mmvit_backbones.models.backbones import PyramidBackbone


class _TinyBackbone(PyramidBackbone):
    """Two linear 'stages' and a new output norm that official checkpoints lack."""
    family = 'loader-test'
    arch_zoo = {'tiny': dict(dims=4)}

    def __init__(self, **kwargs):
        super().__init__(arch='tiny', **kwargs)
        self.stem = nn.Linear(3, 4)
        self.body = nn.Linear(4, 4)
        self.out_norm = nn.LayerNorm(4)

    def stem_modules(self):
        return [self.stem]

    def stage_modules(self, index):
        return [self.body]


def _official(sd):  # official names: 'patch.*', 'blocks.*'; ours: 'stem.*', 'body.*'
    return {k.replace('patch.', 'stem.').replace('blocks.', 'body.'): v for k, v in sd.items()}


if 'loader-test' not in CONVERTERS:
    register_converter('loader-test', detect=lambda sd: any(k.startswith(('patch.', 'stem.')) for k in sd),
                       allow_missing=lambda k: k.startswith('out_norm.'))(lambda sd, model: _official(sd))


def _official_state():
    torch.manual_seed(0)
    return {'patch.weight': torch.randn(4, 3), 'patch.bias': torch.randn(4), 'blocks.weight': torch.randn(4, 4),
            'blocks.bias': torch.randn(4), 'head.weight': torch.randn(10, 4)}


@pytest.mark.parametrize('container', ['raw', 'model', 'state_dict', 'state_dict_ema', 'backbone', 'module'])
def test_containers_and_prefixes(tmp_path, container):
    sd = _official_state()
    if container == 'raw':
        ckpt = sd
    elif container == 'backbone':  # a detector checkpoint: backbone.* plus neck/head keys
        ckpt = {'state_dict': {**{f'backbone.{k}': v for k, v in sd.items()}, 'neck.conv.weight': torch.ones(1)},
                'meta': {'epoch': 12}}
    elif container == 'module':
        ckpt = {'model': {f'module.{k}': v for k, v in sd.items()}}
    else:
        ckpt = {container: sd, 'epoch': 300}
    path = str(tmp_path / 'ckpt.pth')
    torch.save(ckpt, path)
    model = _TinyBackbone()
    report = load_pretrained(model, path)
    torch.testing.assert_close(model.stem.weight, sd['patch.weight'])
    torch.testing.assert_close(model.body.bias, sd['blocks.bias'])
    assert report.missing == ['out_norm.weight', 'out_norm.bias']
    assert 'head.weight' in report.unexpected
    assert len(report.loaded) == 4


def test_init_cfg_pretrained(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save(_official_state(), path)
    model = _TinyBackbone(init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    torch.testing.assert_close(model.stem.weight, _official_state()['patch.weight'])


def test_missing_backbone_keys_raise(tmp_path):
    sd = _official_state()
    del sd['blocks.weight']
    path = str(tmp_path / 'ckpt.pth')
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r'missing .*body.weight'):
        load_pretrained(_TinyBackbone(), path)


def test_shape_mismatch_raises(tmp_path):
    sd = _official_state()
    sd['blocks.weight'] = torch.randn(5, 4)
    path = str(tmp_path / 'ckpt.pth')
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match='wrong shape'):
        load_pretrained(_TinyBackbone(), path)


def test_wrong_family_raises(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'something.else.weight': torch.ones(2)}, path)
    with pytest.raises(CheckpointError, match='is not a loader-test checkpoint'):
        load_pretrained(_TinyBackbone(), path)


def test_corrupt_and_missing_files(tmp_path):
    path = tmp_path / 'weights.pth'
    path.write_bytes(b'this is not a checkpoint')
    with pytest.raises(CheckpointError, match=r'is not a PyTorch checkpoint \(a text file'):
        load_pretrained(_TinyBackbone(), str(path))
    path.write_bytes(b'\x80\x02garbage')  # starts like a pickle, is none
    with pytest.raises(CheckpointError, match='truncated, corrupt or not a PyTorch checkpoint'):
        load_pretrained(_TinyBackbone(), str(path))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_pretrained(_TinyBackbone(), str(tmp_path / 'nope.pth'))
    torch.save([1, 2, 3], str(tmp_path / 'list.pth'))
    with pytest.raises(CheckpointError, match='holds a list'):
        load_pretrained(_TinyBackbone(), str(tmp_path / 'list.pth'))


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ('echo unsafe',))


def test_code_carrying_pickle_is_refused_with_the_reason(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {'patch.weight': torch.ones(4, 3)}, 'extra': _RunsCode()}, path)
    with pytest.raises(CheckpointError, match='outside the weights-only allowlist'):
        load_pretrained(_TinyBackbone(), path)


def test_keys_no_parameter_takes_raise_and_classifier_keys_are_reported(tmp_path):
    """Strictness: a tensor aimed inside the model's modules (another depth) or anywhere unknown raises;
    the classifier head is known to be unused and only reported."""
    for extra in ('blocks.extra', 'other_stage.weight'):
        sd = _official_state()
        sd[extra] = torch.ones(2)
        path = str(tmp_path / 'extra.pth')
        torch.save(sd, path)
        with pytest.raises(CheckpointError, match=r'1 tensors of .* match no parameter of this model'):
            load_pretrained(_TinyBackbone(), path)
    path = str(tmp_path / 'plain.pth')
    torch.save(_official_state(), path)
    assert load_pretrained(_TinyBackbone(), path).unexpected == ['head.weight']


@pytest.mark.parametrize('name', ['model.safetensors', 'renamed.pth'])
def test_safetensors_files_load_by_their_header(tmp_path, name):
    """A safetensors file (timm's and Hugging Face's format) is recognised by its header, whatever its name,
    and read with the safetensors library: tensors only, no pickle."""
    from safetensors.torch import save_file
    path = str(tmp_path / name)
    save_file(_official_state(), path, metadata={'format': 'pt'})
    model = _TinyBackbone()
    report = load_pretrained(model, path)
    torch.testing.assert_close(model.stem.weight, _official_state()['patch.weight'])
    assert report.container == 'raw' and report.unexpected == ['head.weight'] and len(report.loaded) == 4


def test_damaged_safetensors_and_callable_map_location(tmp_path):
    from safetensors.torch import save_file

    from mmvit_backbones.checkpoint import read_checkpoint
    path = tmp_path / 'model.safetensors'
    save_file(_official_state(), str(path))
    with pytest.raises(ValueError, match='a safetensors checkpoint .* takes a device or device string'):
        read_checkpoint(str(path), map_location=lambda storage, loc: storage)
    path.write_bytes(path.read_bytes()[:-10])  # truncated: the header promises more bytes than there are
    with pytest.raises(CheckpointError, match=r'model\.safetensors: the safetensors file is truncated or corrupt'):
        load_pretrained(_TinyBackbone(), str(path))


# The authors' dense backbones of the parity fixtures (tests/fixtures/<family>/NOTE.md): (type, arch, extra
# constructor arguments, file, the file's state dict)
_FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
_AUTHORS_DENSE = {
    'GCViT': (dict(embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), mlp_ratio=2, layer_scale=1e-5), {},
              'gcvit/dense_state.pt', lambda ckpt: ckpt['state_dict']),
    'TwinsPCPVT': (dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[8, 8, 4, 4],
                        depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1]), {}, 'twins/pcpvt.pth',
                   lambda ckpt: ckpt['state_dict']),
    'TwinsSVT': (dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4], mlp_ratios=[4, 4, 4, 4],
                      depths=[2, 2, 3, 2], sr_ratios=[8, 4, 2, 1]), {}, 'twins/svt.pth', lambda ckpt: ckpt['state_dict']),
    'CrossFormer': (dict(embed_dims=16, depths=(2, 2, 4, 2), num_heads=(1, 2, 4, 8), acl=True), {},
                    'crossformer/dense_weights.pth', lambda ckpt: {k: v.float() for k, v in ckpt.items()}),
    'XCiT': (dict(embed_dims=32, depth=5, num_heads=4, patch_size=16, tap_blocks=(1, 2, 3, 4)), {},
             'xcit/dense_p16.pth', lambda ckpt: ckpt['state_dict']),
    'TransNeXt': (dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1], num_heads=[1, 2, 3, 4]),
                  dict(img_size=128, pretrain_size=224), 'transnext/dense_parity.pth', lambda ckpt: ckpt['state_dict']),
}


@pytest.mark.parametrize('type_name', sorted(_AUTHORS_DENSE))
def test_full_authors_checkpoint_into_two_stages_reports_the_later_stages(type_name, tmp_path, monkeypatch):
    """Every family: the authors' checkpoint of all four stages loads into ``out_indices=(0, 1)``; the keys of
    the stages it does not build are reported (and logged) as unused, not an error (the loader asks the
    backbone, ``is_unbuilt_key``), and the built stages get the same tensors as in the full backbone."""
    from mmengine.registry import MODELS

    from mmvit_backbones.checkpoint import loader
    arch, kwargs, name, state_of = _AUTHORS_DENSE[type_name]
    path = str(tmp_path / 'authors.pth')
    torch.save({'state_dict': state_of(torch.load(os.path.join(_FIXTURES, name), weights_only=True))}, path)
    full, short = (MODELS.build(dict(type=type_name, arch=arch, drop_path_rate=0.0, out_indices=out_indices,
                                     **kwargs)) for out_indices in ((0, 1, 2, 3), (0, 1)))
    logged = []
    monkeypatch.setattr(loader, 'print_log', lambda msg, **kw: logged.append(msg))
    load_pretrained(full, path)
    report = load_pretrained(short, path)
    assert report.unexpected and set(report.unexpected) >= set(full.state_dict()) - set(short.state_dict())
    assert all(short.is_unbuilt_key(k) or is_classifier_key(k) for k in report.unexpected), report.unexpected
    assert f'not used by this model, ignored ({len(report.unexpected)})' in logged[-1]
    for key, value in short.state_dict().items():
        assert torch.equal(value, full.state_dict()[key]), key


def test_models_without_is_unbuilt_key_keep_the_converters_rule():
    """A plain module has no ``is_unbuilt_key``: only the converter's ``allow_unexpected`` (default: the
    classifier) decides which unexpected keys are known to be unused."""
    from mmvit_backbones.checkpoint import apply_state_dict
    model = nn.Linear(2, 2)
    state_dict = {**model.state_dict(), 'head.weight': torch.ones(1)}
    assert apply_state_dict(model, state_dict, 'mem', 'raw').unexpected == ['head.weight']
    with pytest.raises(CheckpointError, match='1 tensors of mem match no parameter'):
        apply_state_dict(model, {**state_dict, 'stages.3.weight': torch.ones(1)}, 'mem', 'raw')
