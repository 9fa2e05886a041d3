# Mask R-CNN + FPN, CrossFormer-S backbone, COCO 3x with multi-scale + crop training (the Swin 3x setting).
# The authors published 3x numbers but no 3x config; we keep their 1x optimizer (AdamW lr 1e-4, weight
# decay 1e-4, no paramwise rules) with mmdet's 3x schedule (steps at epochs 27 and 33).
_base_ = ['../_base_/mask_rcnn_fpn_3x_ms_coco.py']
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
