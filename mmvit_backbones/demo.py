"""A small deterministic dataset in COCO and ADE20K layout, so the main job runs with nothing downloaded.

Each image is a textured background with 1-3 non-overlapping shapes (circle, square, triangle).
Class and colour are correlated but not identical (hue jitter, shared brightness range), so a
detector has to use shape as well as colour. The same scenes are written twice:

* ``<root>/coco``: ``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017.json``
  (polygon masks, ``iscrowd=0``), read by mmdet's ``CocoDataset``;
* ``<root>/ade``: ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png``
  with ADE20K's convention (0 = unlabeled, classes from 1; read with ``reduce_zero_label=True``):
  1 = background, 2 = circle, 3 = square, 4 = triangle.

Usage: ``python tools/make_demo_data.py data/demo`` (idempotent: same seed, same bytes).
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
PALETTE = [(120, 120, 120), (220, 60, 60), (60, 180, 75), (70, 110, 230)]
BASE_COLOURS = {'circle': (230, 70, 60), 'square': (70, 190, 80), 'triangle': (70, 100, 235)}


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    if kind == 'circle':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    elif kind == 'square':
        t = np.linspace(0, 2 * np.pi, 4, endpoint=False) + np.pi / 4
    else:
        t = np.linspace(0, 2 * np.pi, 3, endpoint=False) - np.pi / 2
    t = t + angle
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def _render_scene(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, List[dict], np.ndarray]:
    """Returns (BGR image uint8, instances, ADE label map uint8)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    base = rng.uniform(70, 150, size=3)
    grad = rng.uniform(-0.25, 0.25, size=(2, 3))
    img = base + xx[..., None] * grad[0] + yy[..., None] * grad[1] + rng.normal(0, 12, (size, size, 3))
    label = np.ones((size, size), np.uint8)  # 1 = background
    instances, placed = [], []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            kind = CLASSES[int(rng.integers(0, 3))]
            r = float(rng.uniform(0.10, 0.22) * size)
            cx, cy = rng.uniform(r + 2, size - r - 2, size=2)
            if all((cx - px) ** 2 + (cy - py) ** 2 > (r + pr + 3) ** 2 for px, py, pr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        poly = _shape_polygon(kind, cx, cy, r, float(rng.uniform(0, 2 * np.pi)))
        mask = np.zeros((size, size), np.uint8)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
        colour = np.clip(np.array(BASE_COLOURS[kind]) + rng.normal(0, 25, 3), 0, 255)
        img[mask > 0] = colour + rng.normal(0, 8, (int(mask.sum()), 3))
        label[mask > 0] = 2 + CLASSES.index(kind)
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        instances.append(dict(category=kind, bbox=[x1, y1, x2 - x1, y2 - y1], area=float(mask.sum()),
                              segmentation=[np.clip(poly, 0, size - 1).reshape(-1).round(2).tolist()]))
    rgb = np.clip(img, 0, 255).astype(np.uint8)
    return rgb[..., ::-1].copy(), instances, label


def make_demo_data(root: str, num_train: int = 96, num_val: int = 24, size: int = 128, seed: int = 0) -> dict:
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
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, iscrowd=0,
                                        category_id=CLASSES.index(inst['category']) + 1, bbox=inst['bbox'],
                                        area=inst['area'], segmentation=inst['segmentation']))
        coco = dict(images=images, annotations=annotations,
                    categories=[dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)])
        with open(osp.join(coco_root, 'annotations', f'instances_{coco_dir}.json'), 'w') as f:
            json.dump(coco, f)
    return dict(coco=coco_root, ade=ade_root)


def demo_data_ready(root: str) -> bool:
    return (osp.isfile(osp.join(root, 'coco', 'annotations', 'instances_val2017.json'))
            and osp.isdir(osp.join(root, 'ade', 'annotations', 'validation')))
