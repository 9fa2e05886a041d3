"""Run a trained detector or segmentor on images: visualised images and JSON predictions in --out-dir.

    python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_DIR [...] --out-dir D [--device cpu] [--score-thr 0.3]

The task comes from the config's default_scope: 'mmdet' runs mmdet's DetInferencer, which writes
D/vis/<image> (boxes/masks drawn above --score-thr) and D/preds/<stem>.json (labels, scores, bboxes in xyxy
pixels, RLE masks for instance models); 'mmseg' runs mmseg's MMSegInferencer, which writes D/vis/<image>
(class overlay), D/preds/<stem>.png (one class index per pixel) and D/preds/<stem>.json (class names, pixel
counts per class, the PNG's path).
"""
import argparse
import os
import os.path as osp

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (e.g. work_dirs/demo_dino/epoch_24.pth)')
    parser.add_argument('images', nargs='+', help='image files and/or folders of images')
    parser.add_argument('--out-dir', required=True, help='where vis/ and preds/ are written')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1, ... (default: cuda if available)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='detection: lowest score drawn (0.3)')
    parser.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override config keys, as in tools/train.py')
    return parser.parse_args()


def list_images(paths):
    images = []
    for path in paths:
        if osp.isdir(path):
            images += sorted(osp.join(path, n) for n in os.listdir(path) if n.lower().endswith(IMAGE_SUFFIXES))
        elif osp.isfile(path):
            images.append(path)
        else:
            raise FileNotFoundError(f'image {path} does not exist (expected an image file or a folder of images)')
    if not images:
        raise FileNotFoundError(f'no images ({"/".join(IMAGE_SUFFIXES)}) in {paths}')
    return images


def parse_cfg_options(pairs):
    """KEY=VALUE strings as mmengine's DictAction reads them (imported here, not before --help is parsed)."""
    if not pairs:
        return None
    from mmengine.config import DictAction
    namespace = argparse.Namespace()
    DictAction(option_strings=['--cfg-options'], dest='cfg_options')(None, namespace, pairs)
    return namespace.cfg_options


def infer_segmentation(cfg, args, images, device):
    import json

    import cv2
    import numpy as np
    from mmseg.apis import MMSegInferencer

    inferencer = MMSegInferencer(model=cfg, weights=args.checkpoint, device=device)
    pred_dir = osp.join(args.out_dir, 'preds')
    os.makedirs(pred_dir, exist_ok=True)
    classes = list(inferencer.model.dataset_meta['classes'])
    for image in images:
        sample = inferencer(image, return_datasamples=True)
        inferencer.visualize([image], [sample], img_out_dir=osp.join(args.out_dir, 'vis'))
        label = sample.pred_sem_seg.data[0].cpu().numpy().astype(np.uint8)  # (H, W) class indices
        stem = osp.splitext(osp.basename(image))[0]
        mask_path = osp.join(pred_dir, stem + '.png')
        cv2.imwrite(mask_path, label)
        counts = np.bincount(label.ravel(), minlength=len(classes))
        with open(osp.join(pred_dir, stem + '.json'), 'w') as f:
            json.dump(dict(img_path=image, classes=classes, mask=mask_path,
                           pixels={c: int(n) for c, n in zip(classes, counts) if n}), f, indent=1)


def infer_detection(cfg, args, images, device):
    from mmdet.apis import DetInferencer

    inferencer = DetInferencer(model=cfg, weights=args.checkpoint, device=device, show_progress=False)
    inferencer(images, out_dir=args.out_dir, pred_score_thr=args.score_thr, no_save_pred=False)


def main() -> None:
    args = parse_args()  # before the heavy imports below, so --help answers at once
    import torch

    from mmvit_backbones import runner_utils

    images = list_images(args.images)
    cfg = runner_utils.load_config(args.config, parse_cfg_options(args.cfg_options))
    scope = runner_utils.setup_scope(cfg)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if scope == 'mmdet':
        infer_detection(cfg, args, images, device)
    else:
        infer_segmentation(cfg, args, images, device)
    print(f'{len(images)} image(s): drawn in {osp.join(args.out_dir, "vis")}, '
          f'predictions in {osp.join(args.out_dir, "preds")}')


if __name__ == '__main__':
    main()
