"""What tools/train.py and tools/test.py share: scope selection, CLI overrides, data checks, test outputs.

The tools parse their arguments before importing this module (``--help`` stays fast), so the
``--cfg-options`` strings are turned into a dict here, with mmengine's own ``DictAction`` rules.
"""
import argparse
import importlib
import os.path as osp
from contextlib import contextmanager
from copy import deepcopy
from typing import List, Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, RUNNERS

from . import compat
from .engine import MMViTRunner

SCOPES = ('mmdet', 'mmseg')
VISUALIZATION_HOOKS = {'mmdet': 'DetVisualizationHook', 'mmseg': 'SegVisualizationHook'}


def parse_cfg_options(options: Optional[List[str]]) -> Optional[dict]:
    """``['a.b=1', 'c=[1,2]']`` -> ``{'a.b': 1, 'c': [1, 2]}`` (mmengine's ``DictAction`` parsing)."""
    if not options:
        return None
    namespace = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='cfg_options')(None, namespace, options)
    return namespace.cfg_options


def setup_scope(cfg: Config) -> str:
    """Register mmdet's or mmseg's modules, picked from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f"config default_scope is {scope!r}; expected one of {SCOPES} (set default_scope='mmdet' "
                         f"for detection configs or 'mmseg' for segmentation configs)")
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=True)
    return scope


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path} does not exist')
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    if launcher != 'none':
        compat.cpu_distributed_overrides(cfg)
    ensure_rng_state_hook(cfg)
    return cfg


def ensure_rng_state_hook(cfg: Config) -> None:
    """Keep exact resume on for configs that replace ``custom_hooks`` (a stock mmdet/mmseg config, say)."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(isinstance(h, dict) and h.get('type') == 'RNGStateHook' for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='RNGStateHook')]


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """``AmpOptimWrapper`` without a GPU (mmengine 0.10.7's asserts a CUDA/NPU/MLU/MUSA device): the forward
    runs under ``torch.autocast('cpu', dtype=torch.bfloat16)``; bfloat16 has float32's exponent range, so no loss
    scaling is needed (a GradScaler would disable itself without CUDA anyway)."""

    def __init__(self, dtype=None, **kwargs) -> None:
        super().__init__(**kwargs)
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            print_log(f'CPUAmpOptimWrapper: CPU autocast runs bfloat16, not the configured dtype {dtype!r}',
                      logger='current', level=30)
        self.cast_dtype = torch.bfloat16

    def load_state_dict(self, state_dict: dict) -> None:
        # a checkpoint of AmpOptimWrapper (GPU) resumed on the CPU carries its loss scaler
        super().load_state_dict({k: v for k, v in state_dict.items() if k != 'loss_scaler'})

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield


def setup_amp(cfg: Config, enable: bool = False) -> None:
    """``enable`` (``--amp``): fp16 with dynamic loss scaling through ``AmpOptimWrapper`` (mmengine's only AMP
    switch). That wrapper refuses to start without a GPU: there it becomes :class:`CPUAmpOptimWrapper` (bfloat16
    autocast on the CPU), said in the log."""
    wrapper = cfg.get('optim_wrapper', {})
    if enable:
        wrapper.update(type='AmpOptimWrapper', loss_scale=wrapper.get('loss_scale', 'dynamic'))
    if wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        print_log('AmpOptimWrapper needs a GPU; no CUDA device here, so training runs with bfloat16 autocast on '
                  'the CPU instead (CPUAmpOptimWrapper, no loss scaling)', logger='current', level=30)
        wrapper['type'] = 'CPUAmpOptimWrapper'
        for key in ('loss_scale', 'use_fsdp'):
            wrapper.pop(key, None)


def check_datasets(cfg: Config, splits=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Fail early, naming the missing file and the config keys to set, when a dataset is not there."""
    missing = []
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        dataset, key = loader.get('dataset', {}), f'{split}.dataset'
        while 'dataset' in dataset:  # RepeatDataset / ClassBalancedDataset wrappers
            dataset, key = dataset['dataset'], f'{key}.dataset'
        root = dataset.get('data_root', '') or ''
        ann = dataset.get('ann_file', '')
        target = osp.join(root, ann) if ann else root
        if target and not osp.exists(target):
            missing.append((split, target, key))
    if missing:
        where = '; '.join(f'{split}: {target}' for split, target, _ in missing)
        keys = ' '.join(f'{key}.data_root=DIR' for _, _, key in missing)
        raise FileNotFoundError(
            f'dataset file not found ({where}). Download the dataset there (see the mmdet/mmseg dataset docs) '
            f'or point the config at it: --cfg-options {keys}; to try the package without data, run '
            f'`python tools/make_demo_data.py` and a config from configs/demo/.')


def setup_test_outputs(cfg: Config, scope: str, out: Optional[str] = None, show_dir: Optional[str] = None,
                       tta: bool = False) -> None:
    """``tools/test.py --out/--show-dir/--tta`` with mmdet's and mmseg's ``tools/test.py`` semantics: ``--show-dir``
    draws every test image (mmdet: under ``WORK_DIR/TIMESTAMP/D``; mmseg: ``D/vis_data/vis_image``); ``--tta``
    wraps the model in the config's ``tta_model`` with its ``tta_pipeline`` (refused without them); ``--out DIR``
    keeps mmseg's label maps (``.pkl`` dumps are added by :func:`add_dump_metric` once the runner is built)."""
    if show_dir:
        if not cfg.get('visualizer'):
            raise ValueError(f"--show-dir needs a visualizer in the config (mmdet::_base_/default_runtime.py's "
                             f"DetLocalVisualizer or mmseg's SegLocalVisualizer); this config has none")
        hooks = cfg.setdefault('default_hooks', ConfigDict())
        if 'visualization' not in hooks:  # configs that trimmed default_hooks: the scope's own hook
            hooks['visualization'] = dict(type=VISUALIZATION_HOOKS[scope])
            print_log(f'--show-dir: the config has no default_hooks.visualization; using '
                      f'{VISUALIZATION_HOOKS[scope]}', logger='current')
        hooks['visualization']['draw'] = True
        if scope == 'mmdet':
            hooks['visualization']['test_out_dir'] = show_dir
        else:  # SegVisualizationHook draws every `interval`-th batch (50 by default): draw them all
            hooks['visualization']['interval'] = 1
            cfg.visualizer['save_dir'] = show_dir
    if tta:
        absent = [k for k in ('tta_model', 'tta_pipeline') if not cfg.get(k)]
        if absent:
            raise ValueError(f'--tta needs {" and ".join(absent)} in the config (mmdet: DetTTAModel and a '
                             f'TestTimeAug pipeline; mmseg: SegTTAModel, set by mmseg::_base_/default_runtime.py '
                             f'and its dataset bases); this config has none')
        test_data = cfg.test_dataloader.dataset
        while 'dataset' in test_data:
            test_data = test_data['dataset']
        test_data.pipeline = deepcopy(cfg.tta_pipeline)
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    if out and not out.endswith(('.pkl', '.pickle')):
        if scope != 'mmseg':
            raise ValueError(f'--out {out!r}: the dump file must end with .pkl or .pickle')
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True


def add_dump_metric(runner, scope: str, out: Optional[str]) -> None:
    """``--out F.pkl``: dump every prediction (mmdet's ``DumpDetResults``, else mmengine's ``DumpResults``)."""
    if not out or not out.endswith(('.pkl', '.pickle')):
        return
    if scope == 'mmdet':
        from mmdet.evaluation import DumpDetResults as Dump
    else:
        from mmengine.evaluator import DumpResults as Dump
    runner.test_evaluator.metrics.append(Dump(out_file_path=out))


def build_runner(cfg: Config):
    """The config's ``runner_type`` if it names one, else :class:`~mmvit_backbones.engine.MMViTRunner`."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else MMViTRunner.from_cfg(cfg)
