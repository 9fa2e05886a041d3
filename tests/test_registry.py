"""CONTRACT registration: every type in mmengine's root MODELS, reachable unshadowed from mmdet and mmseg."""
import pytest
from mmengine.registry import MODELS as ROOT

import mmvit_backbones
from backbone_checks import build_in_scope

CONTRACT_ARCHS = {
    'GCViT': ['xxtiny', 'xtiny', 'tiny', 'tiny2', 'small', 'small2', 'base', 'large'],
    'TwinsPCPVT': ['small', 'base', 'large'],
    'TwinsSVT': ['small', 'base', 'large'],
    'CrossFormer': ['tiny', 'small', 'base', 'large', 'pp-small', 'pp-base', 'pp-large', 'pp-huge'],
    'XCiT': ['nano-12-p16', 'nano-12-p8', 'tiny-12-p16', 'tiny-12-p8', 'tiny-24-p16', 'tiny-24-p8', 'small-12-p16',
             'small-12-p8', 'small-24-p16', 'small-24-p8', 'medium-24-p16', 'medium-24-p8', 'large-24-p16',
             'large-24-p8'],
    'TransNeXt': ['micro', 'tiny', 'small', 'base'],
}


def test_version():
    assert isinstance(mmvit_backbones.__version__, str) and mmvit_backbones.__version__.count('.') == 2


@pytest.mark.parametrize('type_name', sorted(CONTRACT_ARCHS))
def test_registered_in_root_with_contract_archs(type_name):
    cls = ROOT.get(type_name)
    assert cls is not None, f'{type_name} is not registered in mmengine.registry.MODELS'
    assert cls.__module__.startswith('mmvit_backbones.')
    assert set(CONTRACT_ARCHS[type_name]) <= set(cls.arch_zoo), \
        f'{type_name} lacks archs {set(CONTRACT_ARCHS[type_name]) - set(cls.arch_zoo)}'


@pytest.mark.parametrize('type_name', sorted(CONTRACT_ARCHS))
def test_not_shadowed_by_mmdet_or_mmseg(type_name):
    import mmdet.models  # noqa: F401  (registers everything mmdet has)
    import mmseg.models  # noqa: F401
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    assert type_name not in DET.module_dict and type_name not in SEG.module_dict
    cls = ROOT.get(type_name)
    for scope in ('mmdet', 'mmseg'):
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(scope):
            registry = DET if scope == 'mmdet' else SEG
            assert registry.get(type_name) is cls


def test_custom_imports_config_builds_from_both_scopes(tmp_path):
    """What a user writes: custom_imports in an mmdet or mmseg config, our type in the backbone."""
    from mmengine.config import Config
    for scope in ('mmdet', 'mmseg'):
        path = tmp_path / f'{scope}.py'
        path.write_text(f"custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
                        f"default_scope = '{scope}'\n"
                        "model = dict(type='TwinsPCPVT', arch='small', out_indices=(1, 2, 3))\n")
        cfg = Config.fromfile(str(path))
        model, _ = build_in_scope(scope, cfg.model)
        assert type(model).__name__ == 'TwinsPCPVT' and model.out_indices == (1, 2, 3)
