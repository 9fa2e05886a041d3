# Mask R-CNN + FPN, CrossFormer-B backbone, COCO 1x: the authors' recipe (AdamW lr 1e-4, weight decay 1e-4, no
# paramwise rules; 500-iter linear warm-up, steps at epochs 8 and 11; 2 images x 8 GPUs; 1333x800).
# init_cfg: the authors' ImageNet checkpoint as downloaded (container {'model': ...}); no offline step needed.
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='base',
        drop_path_rate=0.3,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1bK8biVCi17nz_nkt7rBfio_kywUpllSU/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-b.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
