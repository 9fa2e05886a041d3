"""The Python API: top-level exports, ``out_channels``, ``create_backbone``/``list_backbones``, the
deprecated ``pretrained=`` alias and errors that name the registered type."""
import copy
import os
import pickle
import subprocess
import sys
import warnings

import pytest
import torch
from mmengine.registry import MODELS as ROOT

import mmvit_backbones
from mmvit_backbones import create_backbone, list_backbones
from mmvit_backbones.api import parse_backbone_name
from test_registry import CONTRACT_ARCHS
from test_stock_configs import BACKBONES, EXTRA_ARGS

ROOT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME_PREFIX = {'GCViT': 'gcvit', 'TwinsPCPVT': 'twins-pcpvt', 'TwinsSVT': 'twins-svt', 'CrossFormer': 'crossformer',
               'XCiT': 'xcit', 'TransNeXt': 'transnext'}


def tiny(type_name: str, **kwargs):
    """The type with one block per stage (the family's real widths), built as a config would build it."""
    arch, _ = BACKBONES[type_name]
    return ROOT.build(dict(type=type_name, arch=arch, **EXTRA_ARGS.get(type_name, {}), **kwargs))


def test_top_level_exports_are_the_registered_types():
    for type_name in CONTRACT_ARCHS:
        assert getattr(mmvit_backbones, type_name) is ROOT.get(type_name)
        assert type_name in mmvit_backbones.__all__
    assert {'create_backbone', 'list_backbones'} <= set(mmvit_backbones.__all__)


def test_list_backbones_names_every_contract_arch():
    expected = [f'{NAME_PREFIX[t]}-{arch}' for t, archs in CONTRACT_ARCHS.items() for arch in archs]
    names = list_backbones()
    assert sorted(names) == sorted(expected) and len(set(names)) == len(names)
    for name in names:
        cls, arch = parse_backbone_name(name)
        assert name == f'{NAME_PREFIX[cls.__name__]}-{arch}' and arch in cls.arch_zoo
    assert parse_backbone_name('Twins-SVT-Base') == (ROOT.get('TwinsSVT'), 'base')
    assert parse_backbone_name('crossformer-pp-base') == (ROOT.get('CrossFormer'), 'pp-base')


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
@pytest.mark.parametrize('out_indices', [(1, 2, 3), (3, 0)])  # (0, 1, 2, 3): test_stock_configs
def test_out_channels_match_the_outputs(type_name, out_indices):
    model = tiny(type_name, out_indices=out_indices).eval()
    assert model.out_channels == tuple(BACKBONES[type_name][1][i] for i in out_indices)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert tuple(out.shape[1] for out in outs) == model.out_channels


def test_create_backbone_builds_and_loads_a_checkpoint(tmp_path):
    source = create_backbone('xcit-nano-12-p16', out_indices=(1, 2, 3), drop_path_rate=0.1)
    assert type(source) is mmvit_backbones.XCiT and source.arch_settings['embed_dims'] == 128
    assert source.training and source.drop_path_rate == 0.1  # a new nn.Module, the family's random init
    assert source.out_channels == (128, 128, 128)
    path = str(tmp_path / 'xcit_nano.pth')
    torch.save({'state_dict': source.state_dict()}, path)
    loaded = create_backbone('xcit-nano-12-p16', pretrained=path, out_indices=(1, 2, 3), drop_path_rate=0.1)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 64, 96)
    source.eval(), loaded.eval()
    with torch.no_grad():
        for a, b in zip(source(x), loaded(x)):
            assert torch.equal(a, b)


def test_create_backbone_errors():
    with pytest.raises(ValueError, match=r"unknown backbone 'gcvit-tinyy'; did you mean 'gcvit-tiny'.*"
                                         r"Valid names: gcvit-xxtiny, .*transnext-base"):
        create_backbone('gcvit-tinyy')
    with pytest.raises(ValueError, match="unknown backbone 'twins-small'.*twins-pcpvt-small"):
        create_backbone('twins-small')
    with pytest.raises(TypeError, match=r"takes the arch from the name \('tiny'\), got arch='small'"):
        create_backbone('gcvit-tiny', arch='small')
    with pytest.raises(ValueError, match='got both pretrained=.a.pth. and init_cfg'):
        create_backbone('gcvit-tiny', pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth'))
    with pytest.raises(TypeError, match="^XCiT got an unexpected keyword argument 'foo'"):
        create_backbone('xcit-nano-12-p16', foo=1)


def test_pretrained_true_and_list_backbones_pretrained():
    """``pretrained=True`` means the default release (``mmvit://<name>``; downloads: test_checkpoint_zoo.py);
    ``list_backbones(pretrained=True)`` is the subset of names that have a direct download."""
    with_weights = list_backbones(pretrained=True)
    assert set(with_weights) < set(list_backbones())
    assert 'twins-svt-small' in with_weights and 'xcit-nano-12-p16' in with_weights
    assert not any(name.startswith('crossformer-') for name in with_weights)  # Google Drive / Baidu pages only
    with pytest.raises(TypeError, match=r'pretrained must be a checkpoint path or URL \(str\), True \(the default '
                                        r'release\) or None, got int 1'):
        create_backbone('gcvit-tiny', pretrained=1)
    with pytest.raises(ValueError, match='got both pretrained=.mmvit://gcvit-tiny. and init_cfg'):
        create_backbone('gcvit-tiny', pretrained=True, init_cfg=dict(type='Pretrained', checkpoint='b.pth'))


def test_create_backbone_without_mmdet_or_mmseg():
    """A detectron2/Ultralytics user: neither mmdet nor mmseg importable, the API still works."""
    code = ("import sys\n"
            "sys.modules['mmdet'] = None\n"
            "sys.modules['mmseg'] = None\n"
            "import torch, mmvit_backbones\n"
            "model = mmvit_backbones.create_backbone('xcit-nano-12-p16', out_indices=(1, 2, 3)).eval()\n"
            "outs = model(torch.randn(1, 3, 64, 64))\n"
            "assert [tuple(o.shape) for o in outs] == [(1, 128, 8, 8), (1, 128, 4, 4), (1, 128, 2, 2)]\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mmdet', 'mmseg', 'mmpretrain')"
            " and sys.modules[m] is not None)\n"
            "assert not loaded, loaded\n"
            "print('ok')\n")
    env = dict(os.environ, PYTHONPATH=ROOT_DIR + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT_DIR, env=env, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]
    # mmengine's per-parameter init dump (hundreds of lines without a log file) stays out of the console
    assert 'init_weights' not in result.stdout + result.stderr, (result.stdout + result.stderr)[:2000]


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
def test_pretrained_alias(type_name):
    assert tiny(type_name, pretrained=None).init_cfg is None
    with pytest.warns(FutureWarning, match=f"{type_name}: pretrained= is deprecated; use init_cfg="):
        model = tiny(type_name, pretrained='work_dirs/backbone.pth')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='work_dirs/backbone.pth')
    with pytest.raises(ValueError, match=f"{type_name}: got both pretrained='a.pth' and init_cfg="):
        tiny(type_name, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth'))
    with pytest.raises(TypeError, match=f'{type_name}: pretrained must be a checkpoint path or URL'):
        tiny(type_name, pretrained=True)
    # a stock mmseg config's ResNet checkpoint: refused when the model is built, before any download
    with pytest.raises(ValueError, match=f"{type_name}: pretrained='open-mmlab://resnet50_v1c' names a checkpoint "
                                         "of the open-mmlab:// model zoo.*set model.pretrained=None"):
        tiny(type_name, pretrained='open-mmlab://resnet50_v1c')


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
def test_errors_name_the_registered_type(type_name):
    arch, _ = BACKBONES[type_name]
    with pytest.raises(TypeError, match=f"^{type_name} got an unexpected keyword argument 'foo'; {type_name} "
                                        "accepts: arch, in_channels, out_indices, .*pretrained"):
        ROOT.get(type_name)(arch=arch, foo=1)
    # through the registry (what a config does): the user's type, never an internal base class
    with pytest.raises(TypeError, match=f"{type_name} got an unexpected keyword argument 'depth'") as info:
        ROOT.build(dict(type=type_name, arch=arch, depth=50))
    assert 'Backbone' not in str(info.value).replace('PyramidBackbone', '')
    with pytest.raises(TypeError, match=f'^{type_name} too many positional arguments'):
        ROOT.get(type_name)(*([None] * 20))


@pytest.mark.parametrize('type_name', ['TwinsSVT', 'XCiT'])
def test_copy_and_pickle_keep_working(type_name):
    """The constructor-argument check runs only for construction, not for copy.deepcopy/pickle."""
    model = tiny(type_name, out_indices=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert type(clone) is type(model) and clone.out_channels == model.out_channels
            for key, value in model.state_dict().items():
                assert torch.equal(clone.state_dict()[key], value)
