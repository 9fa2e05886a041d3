"""The end of `make demo`: each metric beside its trivial baseline, the loss/metric curves as PNGs, and where
the checkpoints, logs and pictures are.

    python tools/demo_summary.py [--seg-work-dir work_dirs/demo_upernet] [--det-work-dir work_dirs/demo_dino]
                                 [--data-root data/demo]

Baselines: a segmentor that predicts background everywhere (its mIoU computed from the validation labels) and a
detector that predicts nothing (mAP 0).
"""
import argparse
import os
import os.path as osp


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seg-work-dir', default='work_dirs/demo_upernet')
    parser.add_argument('--det-work-dir', default='work_dirs/demo_dino')
    parser.add_argument('--data-root', default='data/demo')
    return parser.parse_args()


def run_files(work_dir: str) -> dict:
    """Where a finished run in ``work_dir`` left its checkpoint, log, scalars and drawn validation images."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isfile(osp.join(work_dir, d, f'{d}.log')))
    if not runs:
        raise FileNotFoundError(f'no <timestamp>/<timestamp>.log under {work_dir}: has the run started?')
    run = osp.join(work_dir, runs[-1])
    last = osp.join(work_dir, 'last_checkpoint')
    checkpoint = open(last).read().strip() if osp.isfile(last) else None
    image_dir = osp.join(run, 'vis_data', 'vis_image')
    images = sorted(osp.join(image_dir, n) for n in os.listdir(image_dir)) if osp.isdir(image_dir) else []
    return dict(checkpoint=checkpoint, log=osp.join(run, f'{runs[-1]}.log'),
                scalars=osp.join(run, 'vis_data', 'scalars.json'), image_dir=image_dir, images=images)


def final_metrics(records: list, keys) -> dict:
    """The last logged value of each metric in ``keys`` (validation records)."""
    found = {}
    for record in records:
        found.update({k: float(record[k]) for k in keys if k in record})
    missing = [k for k in keys if k not in found]
    if missing:
        raise KeyError(f'metrics {missing} not in the run scalars (keys seen: {sorted(set().union(*records))})')
    return found


def plot_curves(records: list, metric: str, out_png: str, title: str) -> str:
    """Training loss against iteration, with the validation ``metric`` on a second axis, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    train = [r for r in records if 'loss' in r]
    val = [r for r in records if metric in r]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.plot([r['step'] for r in train], [r['loss'] for r in train], color='tab:blue', label='train loss')
    ax.set(xlabel='iteration', yscale='log')
    ax.set_ylabel('train loss', color='tab:blue')
    if val:
        ax2 = ax.twinx()
        ax2.plot(_val_iterations(records, metric), [r[metric] for r in val], 'o-', color='tab:red', label=metric)
        ax2.set_ylabel(f'val {metric}', color='tab:red')
    ax.set_title(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def _val_iterations(records: list, metric: str) -> list:
    """The training iteration each validation of ``metric`` ran at. Iteration-based runs step validation records
    by iteration; epoch-based ones by epoch, so there the last training record logged before it stands in."""
    by_epoch = any('epoch' in r for r in records if 'loss' in r)
    xs, last_step = [], 0
    for record in records:  # chronological
        if 'loss' in record:
            last_step = record['step']
        elif metric in record:
            xs.append(last_step if by_epoch else record['step'])
    return xs


def main() -> None:
    args = parse_args()  # before the imports below, so --help answers at once
    from mmvit_backbones import demo

    lines = ['', '=' * 100, 'make demo: summary (held-out validation split)']
    pictures = []
    if args.seg_work_dir:
        files = run_files(args.seg_work_dir)
        records = demo.read_scalars(args.seg_work_dir)
        miou = final_metrics(records, ['mIoU'])['mIoU']
        baseline = demo.all_background_miou(osp.join(args.data_root, 'ade'))
        curve = plot_curves(records, 'mIoU', osp.join(args.seg_work_dir, 'curves.png'),
                                 'UperNet + TransNeXt (demo arch): segmentation')
        lines += [f'  segmentation  UperNet + TransNeXt  mIoU {miou:5.1f}   '
                  f'(all-background baseline {baseline:.1f})',
                  f'      checkpoint {files["checkpoint"]}', f'      log        {files["log"]}']
        pictures += [curve, f'{files["image_dir"]}/ ({len(files["images"])} validation overlays)']
    if args.det_work_dir:
        files = run_files(args.det_work_dir)
        records = demo.read_scalars(args.det_work_dir)
        metrics = final_metrics(records, ['coco/bbox_mAP', 'coco/bbox_mAP_50'])
        curve = plot_curves(records, 'coco/bbox_mAP', osp.join(args.det_work_dir, 'curves.png'),
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
