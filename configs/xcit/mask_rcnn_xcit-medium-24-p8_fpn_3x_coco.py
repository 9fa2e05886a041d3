# Mask R-CNN + FPN, XCiT-M24/8, COCO 3x multi-scale: the authors' mask_rcnn_xcit_medium_24_p8_3x_coco.py
# (published: 48.5 / 43.7).
_base_ = ['./_base_/mask_rcnn_3x.py']
model = dict(
    backbone=dict(
        arch='medium-24-p8',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_medium_24_p8_384_dist.pth')),
    neck=dict(in_channels=[512, 512, 512, 512]))
