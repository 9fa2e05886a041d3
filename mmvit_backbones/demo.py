"""The embedded demo: a small deterministic dataset in COCO and ADE20K layout, so the main job runs with nothing
downloaded, plus the segmentation baseline and run scalars that ``tools/demo_summary.py`` reports.

Each image is a grey background (random shade, faint gradient and noise) with 1-3 large non-overlapping shapes
(circle, square, triangle) filled with their class colour: easy on purpose, so that a small model trained for
minutes on CPU clearly learns. The same scenes are written as ``<root>/coco`` (``train2017/``, ``val2017/``,
``annotations/instances_{train,val}2017.json``, polygon masks) and ``<root>/ade`` (``images/`` and
``annotations/`` ``{training,validation}/``, ADE20K's convention read with ``reduce_zero_label=True``:
0 = unlabeled, 1 = background, 2 = circle, 3 = square, 4 = triangle).

Usage: ``python tools/make_demo_data.py data/demo`` (same seed, same bytes).
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
BASE_COLOURS = {'circle': (230, 70, 60), 'square': (70, 190, 80), 'triangle': (70, 100, 235)}
VERTICES = {'circle': (32, 0.0), 'square': (4, np.pi / 4), 'triangle': (3, -np.pi / 2)}  # (count, first angle)


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    count, start = VERTICES[kind]
    t = np.linspace(0, 2 * np.pi, count, endpoint=False) + start + angle
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def _render_scene(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """Returns (BGR image uint8, COCO annotations without ids, ADE label map uint8): one scene."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = rng.uniform(150, 200) + rng.uniform(-8, 8, size=3)
    grad = rng.uniform(-0.1, 0.1, size=(2, 1))
    img = base + xx[..., None] * grad[0] + yy[..., None] * grad[1] + rng.normal(0, 4, (size, size, 3))
    label = np.ones((size, size), np.uint8)  # 1 = background
    instances, placed = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(30):
            kind = CLASSES[int(rng.integers(0, 3))]
            r = float(rng.uniform(0.13, 0.24) * size)
            cx, cy = rng.uniform(r + 2, size - r - 2, size=2)
            if all((cx - px) ** 2 + (cy - py) ** 2 > (r + pr + 4) ** 2 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        poly = _shape_polygon(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)))
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        colour = np.clip(np.array(BASE_COLOURS[kind]) + rng.normal(0, 10, 3), 0, 255)
        img[mask > 0] = colour + rng.normal(0, 4, (int(mask.sum()), 3))
        label[mask > 0] = 2 + CLASSES.index(kind)
        instances.append(dict(category_id=CLASSES.index(kind) + 1,
                              bbox=[float(v) for v in cv2.boundingRect(mask)], area=float(mask.sum()),
                              segmentation=[np.clip(poly, 0, size - 1).reshape(-1).round(2).tolist()]))
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    return rgb[..., ::-1].copy(), instances, label


def make_demo_data(root: str, num_train: int = 192, num_val: int = 48, size: int = 128, seed: int = 0) -> dict:
    """Write the COCO-layout and ADE20K-layout demo datasets under ``root``; returns their paths."""
    rng = np.random.default_rng(seed)
    coco_root, ade_root = osp.join(root, 'coco'), osp.join(root, 'ade')
    for split, count, coco_dir, ade_dir in (('train', num_train, 'train2017', 'training'),
                                             ('val', num_val, 'val2017', 'validation')):
        for d in (osp.join(coco_root, coco_dir), osp.join(coco_root, 'annotations'),
                  osp.join(ade_root, 'images', ade_dir), osp.join(ade_root, 'annotations', ade_dir)):
            os.makedirs(d, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            bgr, instances, label = _render_scene(rng, size)
            name = f'{split}_{i:04d}'
            cv2.imwrite(osp.join(coco_root, coco_dir, name + '.jpg'), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ade_root, 'images', ade_dir, name + '.jpg'), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ade_root, 'annotations', ade_dir, name + '.png'), label)
            images.append(dict(id=i + 1, file_name=name + '.jpg', height=size, width=size))
            for inst in instances:
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, iscrowd=0, **inst))
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)])
        with open(osp.join(coco_root, 'annotations', f'instances_{coco_dir}.json'), 'w') as f:
            json.dump(coco, f)
    return dict(coco=coco_root, ade=ade_root)


# ------------------------------------------------------------------------------------- results of a demo run
def all_background_miou(ade_root: str, split: str = 'validation') -> float:
    """mIoU (in %) of a segmentor that predicts ``background`` everywhere, on the ADE-layout labels of ``split``, as
    mmseg's ``IoUMetric`` computes it: background IoU is its pixel share, every other class that occurs scores 0,
    classes that never occur are left out of the mean."""
    label_dir = osp.join(ade_root, 'annotations', split)
    names = sorted(n for n in os.listdir(label_dir) if n.endswith('.png'))
    if not names:
        raise FileNotFoundError(f'no label PNGs in {label_dir}')
    counts = np.zeros(256, np.int64)
    for name in names:
        counts += np.bincount(cv2.imread(osp.join(label_dir, name), cv2.IMREAD_UNCHANGED).ravel(), minlength=256)
    valid = counts[1:1 + len(SEG_CLASSES)]  # 0 is "unlabeled" (ignored with reduce_zero_label=True)
    present = int((valid > 0).sum())
    return 100.0 * valid[0] / valid.sum() / present


def read_scalars(work_dir: str) -> List[dict]:
    """The records of the newest ``<work_dir>/<timestamp>/vis_data/scalars.json`` (mmengine's LocalVisBackend)."""
    runs = sorted(d for d in os.listdir(work_dir)
                  if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))) if osp.isdir(work_dir) else []
    if not runs:
        raise FileNotFoundError(f'no <timestamp>/vis_data/scalars.json under {work_dir}: has the run finished?')
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        return [json.loads(line) for line in f if line.strip()]
