# DINO 4-scale, CrossFormer-S backbone, COCO 12 epochs (mmdet's recipe: AdamW lr 1e-4, weight decay 1e-4,
# backbone lr x0.1, grad clip 0.1). The authors published no DINO result; this config is ours.
_base_ = ['../_base_/dino_4scale_12e_coco.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='small',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-s.pth')),
    neck=dict(in_channels=[192, 384, 768]))
