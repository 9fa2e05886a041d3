"""Train a detector (mmdet 3.x) or segmentor (mmseg 1.x) from a config; the scope comes from the config.

    python tools/train.py CONFIG [--work-dir D] [--amp] [--resume [CKPT]] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NGPUS [...]      # torchrun; gloo on CPU

``load_from=`` may name a file or URL, including the authors' released detectors/segmentors (their
backbone keys are converted; see docs/checkpoints.md). Tensors it lacks or that change shape (another
number of classes) are listed in the log and keep their initialisation; set ``allow_partial_load=False``
in the config to make that an error.
"""
import argparse
import os


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector or segmentor with an mmvit-backbones backbone')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 with dynamic loss scaling on a GPU (AmpOptimWrapper); '
                             'without one, bfloat16 autocast on the CPU')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by the actual total batch size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir if no path')
    parser.add_argument('--cfg-options', nargs='+', metavar='KEY=VALUE', help='override config keys: key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main() -> None:
    args = parse_args()  # before the heavy imports, so that --help answers at once
    import mmvit_backbones  # noqa: F401  (registers the backbones and applies the compat shims)
    from mmvit_backbones import compat, runner_utils

    cfg = runner_utils.load_config(args.config, runner_utils.parse_cfg_options(args.cfg_options), args.work_dir,
                                   args.launcher)
    runner_utils.setup_scope(cfg)
    runner_utils.setup_amp(cfg, enable=args.amp)
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(f'{args.config}: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    cfg.setdefault('allow_partial_load', True)  # fine-tuning: a new head keeps its initialisation, logged
    runner_utils.check_datasets(cfg, ('train_dataloader', 'val_dataloader'))
    runner = runner_utils.build_runner(cfg)
    runner.train()
    compat.finish_distributed()


if __name__ == '__main__':
    main()
