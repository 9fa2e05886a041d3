# Mask R-CNN + FPN, XCiT-T12/8, COCO 3x multi-scale: the authors' mask_rcnn_xcit_tiny_12_p8_3x_coco.py
# (published: 44.5 / 40.3).
_base_ = ['./_base_/mask_rcnn_3x.py']
model = dict(
    backbone=dict(
        arch='tiny-12-p8',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p8_384_dist.pth')),
    neck=dict(in_channels=[192, 192, 192, 192]))
