"""Evaluate a checkpoint with a config (mmdet or mmseg, picked from the config's default_scope).

    python tools/test.py CONFIG CHECKPOINT [--work-dir D] [--out F.pkl] [--show-dir D] [--tta]
                         [--allow-partial] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT NGPUS

CHECKPOINT is a file or a URL: this package's checkpoints, or the authors' released mmdet 2.x/3.x
detectors and mmseg 0.x/1.x segmentors of each family (backbone keys converted; see docs/checkpoints.md).
A checkpoint that leaves model tensors unloaded is refused, listing them, unless --allow-partial.
"""
import argparse
import os


def parse_args():
    parser = argparse.ArgumentParser(description='Test a detector or segmentor with an mmvit-backbones backbone')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file or URL')
    parser.add_argument('--work-dir', help='the dir to save evaluation results')
    parser.add_argument('--out', help='dump the predictions to this .pkl file (mmdet/mmseg); for mmseg a '
                        'directory keeps the predicted label maps there')
    parser.add_argument('--show-dir', help='draw the predictions on the test images and save them here '
                        '(mmdet: under WORK_DIR/TIMESTAMP/; mmseg: SHOW_DIR/vis_data/vis_image)')
    parser.add_argument('--tta', action='store_true', help="test-time augmentation with the config's tta_model "
                        'and tta_pipeline')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even if the checkpoint leaves model tensors unloaded (they keep their '
                        'initialisation; the load report lists them)')
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
    from mmvit_backbones.checkpoint.files import local_checkpoint_file

    local_checkpoint_file(args.checkpoint)  # a missing file, a directory or a dead URL fails before the build
    cfg = runner_utils.load_config(args.config, runner_utils.parse_cfg_options(args.cfg_options), args.work_dir,
                                   args.launcher)
    scope = runner_utils.setup_scope(cfg)
    runner_utils.setup_amp(cfg)
    cfg.load_from = args.checkpoint
    cfg.allow_partial_load = args.allow_partial
    runner_utils.setup_test_outputs(cfg, scope, args.out, args.show_dir, args.tta)
    runner_utils.check_datasets(cfg, ('test_dataloader', ))
    runner = runner_utils.build_runner(cfg)
    runner_utils.add_dump_metric(runner, scope, args.out)
    runner.test()
    compat.finish_distributed()


if __name__ == '__main__':
    main()
