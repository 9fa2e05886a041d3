# Mask R-CNN + FPN, CrossFormer-S backbone, COCO 1x: the authors' recipe (AdamW lr 1e-4, weight decay 1e-4, no
# paramwise rules; 500-iter linear warm-up, steps at epochs 8 and 11; 2 images x 8 GPUs; 1333x800).
# init_cfg: the authors' ImageNet checkpoint as downloaded (container {'model': ...}); no offline step needed.
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-s.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
