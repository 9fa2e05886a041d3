"""What tools/train.py and tools/test.py share: scope selection, CLI overrides, data checks."""
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from . import compat

SCOPES = ('mmdet', 'mmseg')


def setup_scope(cfg: Config) -> str:
    """Register mmdet's or mmseg's modules, picked from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f"config default_scope is {scope!r}; expected one of {SCOPES} (set default_scope='mmdet' "
                         f"for detection configs or 'mmseg' for segmentation configs)")
    if scope == 'mmdet':
        from mmdet.utils import register_all_modules
    else:
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
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
    return cfg


def enable_amp(cfg: Config) -> None:
    """``--amp``: fp16 with dynamic loss scaling through ``AmpOptimWrapper`` (mmengine's only AMP switch)."""
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def amp_to_cpu(cfg: Config) -> None:
    """mmengine's ``AmpOptimWrapper`` refuses to start without a GPU: fall back to fp32 there, loudly."""
    wrapper = cfg.get('optim_wrapper', {})
    if wrapper.get('type') == 'AmpOptimWrapper' and not torch.cuda.is_available():
        print_log('AmpOptimWrapper needs a GPU; no CUDA device here, so this run trains in fp32 with '
                  'OptimWrapper instead', logger='current', level=30)
        wrapper['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)


def check_datasets(cfg: Config, splits=('train_dataloader', 'val_dataloader', 'test_dataloader')) -> None:
    """Fail early, naming the missing file, when a dataset is not where the config says."""
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        dataset = loader.get('dataset', {})
        while 'dataset' in dataset:  # RepeatDataset / ClassBalancedDataset wrappers
            dataset = dataset['dataset']
        root = dataset.get('data_root', '') or ''
        ann = dataset.get('ann_file', '')
        target = osp.join(root, ann) if ann else root
        if target and not osp.exists(target):
            raise FileNotFoundError(
                f'{split}: dataset file {target} not found. Download the dataset there (see the mmdet/mmseg '
                f'dataset docs) or set data_root with --cfg-options; to try the package without data, run '
                f'`python tools/make_demo_data.py` and a config from configs/demo/.')


def local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', 0))
