# Mask R-CNN + FPN, XCiT-S12/8, COCO 3x multi-scale: the authors' mask_rcnn_xcit_small_12_p8_3x_coco.py
# (published: 47.0 / 42.3).
_base_ = ['./_base_/mask_rcnn_3x.py']
model = dict(
    backbone=dict(
        arch='small-12-p8',
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_12_p8_384_dist.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
