"""Evaluate a checkpoint with a config (mmdet or mmseg, picked from the config's default_scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS
"""
import argparse
import os
import os.path as osp

import mmvit_backbones  # noqa: F401  (registers the backbones and applies the compat shims)
from mmengine.config import DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmvit_backbones import runner_utils


def parse_args():
    parser = argparse.ArgumentParser(description='Test a detector or segmentor with an mmvit-backbones backbone')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save evaluation results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    cfg = runner_utils.load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    runner_utils.setup_scope(cfg)
    runner_utils.amp_to_cpu(cfg)
    cfg.load_from = args.checkpoint
    runner_utils.check_datasets(cfg, ('test_dataloader', ))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.test()


if __name__ == '__main__':
    main()
