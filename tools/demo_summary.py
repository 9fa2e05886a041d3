"""The end of `make demo`: each metric beside its trivial baseline, the loss/metric curves as PNGs, and where
the checkpoints, logs and pictures are.

    python tools/demo_summary.py [--seg-work-dir work_dirs/demo_upernet] [--det-work-dir work_dirs/demo_dino]
                                 [--data-root data/demo]

Baselines: a segmentor that predicts background everywhere (its mIoU computed from the validation labels) and a
detector that predicts nothing (mAP 0).
"""
import argparse
import os.path as osp


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seg-work-dir', default='work_dirs/demo_upernet')
    parser.add_argument('--det-work-dir', default='work_dirs/demo_dino')
    parser.add_argument('--data-root', default='data/demo')
    return parser.parse_args()


def main() -> None:
    args = parse_args()  # before the imports below, so --help answers at once
    from mmvit_backbones import demo

    lines = ['', '=' * 100, 'make demo: summary (held-out validation split)']
    pictures = []
    if args.seg_work_dir:
        files = demo.run_files(args.seg_work_dir)
        records = demo.read_scalars(args.seg_work_dir)
        miou = demo.final_metrics(records, ['mIoU'])['mIoU']
        baseline = demo.all_background_miou(osp.join(args.data_root, 'ade'))
        curve = demo.plot_curves(records, 'mIoU', osp.join(args.seg_work_dir, 'curves.png'),
                                 'UperNet + TransNeXt (demo arch): segmentation')
        lines += [f'  segmentation  UperNet + TransNeXt  mIoU {miou:5.1f}   '
                  f'(all-background baseline {baseline:.1f})',
                  f'      checkpoint {files["checkpoint"]}', f'      log        {files["log"]}']
        pictures += [curve, f'{files["image_dir"]}/ ({len(files["images"])} validation overlays)']
    if args.det_work_dir:
        files = demo.run_files(args.det_work_dir)
        records = demo.read_scalars(args.det_work_dir)
        metrics = demo.final_metrics(records, ['coco/bbox_mAP', 'coco/bbox_mAP_50'])
        curve = demo.plot_curves(records, 'coco/bbox_mAP', osp.join(args.det_work_dir, 'curves.png'),
                                 'DINO + TransNeXt (demo arch): detection')
        lines += [f'  detection     DINO + TransNeXt     bbox mAP {metrics["coco/bbox_mAP"]:.3f}, '
                  f'mAP50 {metrics["coco/bbox_mAP_50"]:.3f}   (a detector predicting nothing: 0.000)',
                  f'      checkpoint {files["checkpoint"]}', f'      log        {files["log"]}']
        pictures += [curve, f'{files["image_dir"]}/ ({len(files["images"])} validation images: '
                            f'ground truth left, predictions right)']
    lines += ['  pictures'] + [f'      {p}' for p in pictures] + ['=' * 100]
    print('\n'.join(lines))


if __name__ == '__main__':
    main()
