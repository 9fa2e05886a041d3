"""compat: mmengine checkpoints load with weights-only unpickling; unsafe pickles are still refused."""
import collections
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint

from mmvit_backbones import compat


def _mmengine_like_checkpoint(path):
    hub = MessageHub.get_instance('compat-test')
    for i in range(3):
        hub.update_scalar('train/loss', float(i) + 0.5)
    hub.update_info('iter', 7)
    ckpt = dict(meta=dict(epoch=1, iter=7, dataset_meta=dict(classes=('a', 'b'), palette=[(1, 2, 3)]),
                          seed=np.int64(3)),
                state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict(),
                optimizer={'state': {}, 'param_groups': [{'lr': np.float64(0.1)}]})
    torch.save(ckpt, path)


def test_mmengine_checkpoint_loads_weights_only(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_like_checkpoint(path)
    ckpt = _load_checkpoint(path, map_location='cpu')  # mmengine's own call: torch.load without weights_only
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(1.5)
    assert ckpt['meta']['iter'] == 7


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('echo unsafe',))


class _ReachesPrivateAttr:
    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.fixture(params=['native', 'restricted'])
def weights_only_path(request, monkeypatch):
    """Both ways load_weights_only can take: torch's own allowlist (torch >= 2.6) and the restricted unpickler
    (torch < 2.6), which runs on any torch."""
    if request.param == 'restricted':
        monkeypatch.setattr(compat, 'SAFE_GLOBAL_PAIRS', False)
        compat.allow_mmengine_checkpoint_globals.cache_clear()
    elif not compat.SAFE_GLOBAL_PAIRS:
        pytest.skip(f'torch {torch.__version__} < 2.6 has only the restricted unpickler')
    yield request.param
    compat.allow_mmengine_checkpoint_globals.cache_clear()


@pytest.mark.parametrize('payload', [_RunsCode(), _ReachesPrivateAttr()], ids=['os.system', 'getattr-private'])
def test_unsafe_pickles_are_refused(tmp_path, payload, weights_only_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        compat.load_weights_only(path)  # this package's loader, on every supported torch
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.6 defaults to weights-only: mmengine's call too
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)


def test_load_weights_only_reads_mmengine_and_research_checkpoints(tmp_path, weights_only_path):
    """The allowlist (HistoryBuffer, NumPy scalars/arrays, argparse.Namespace) on torch 2.1 as on 2.13."""
    import argparse
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_like_checkpoint(path)
    ckpt = compat.load_weights_only(path, map_location='cpu')
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() == pytest.approx(1.5)
    assert ckpt['meta']['seed'] == 3
    research = str(tmp_path / 'research.pth')
    torch.save({'model': {'w': torch.arange(3.0).to(torch.bfloat16)}, 'args': argparse.Namespace(lr=0.1),
                'arr': np.arange(3), 'counts': collections.Counter(a=2)}, research)
    ckpt = compat.load_weights_only(research)
    assert ckpt['args'].lr == 0.1 and ckpt['model']['w'].dtype == torch.bfloat16
    assert np.array_equal(ckpt['arr'], np.arange(3)) and ckpt['counts']['a'] == 2


def test_torch_version_helpers():
    assert compat.torch_version() >= compat.MIN_TORCH
    compat.require_torch(compat.MIN_TORCH, 'anything')
    with pytest.raises(RuntimeError, match=r'needs torch >= 99\.0; this is torch'):
        compat.require_torch((99, 0), 'a future feature')
    assert compat.is_compiling() is False and compat.is_exporting() is False


def test_cpu_distributed_overrides():
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend="nccl")), launcher="none"))
    compat.cpu_distributed_overrides(cfg)
    if torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    else:
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
        assert cfg.model_wrapper_cfg['device_ids'] is None


@pytest.mark.skipif(compat.torch_version() >= (2, 5), reason='torch >= 2.5 exports (tests/test_export.py)')
def test_onnx_export_on_an_older_torch_names_the_version(tmp_path):
    from mmvit_backbones.api import build_backbone
    from mmvit_backbones.onnx_export import export_onnx
    model = build_backbone('xcit-nano-12-p16')
    with pytest.raises(RuntimeError, match=r'ONNX export .* needs torch >= 2\.5; this is torch 2\.'):
        export_onnx(model, str(tmp_path / 'm.onnx'))
