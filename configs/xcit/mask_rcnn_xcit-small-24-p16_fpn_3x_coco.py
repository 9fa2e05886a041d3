# Mask R-CNN + FPN, XCiT-S24/16, COCO 3x multi-scale: the authors' mask_rcnn_xcit_small_24_p16_3x_coco.py
# (published: 46.5 / 41.8).
_base_ = ['./_base_/mask_rcnn_3x.py']
model = dict(
    backbone=dict(
        arch='small-24-p16',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_24_p16_384_dist.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
