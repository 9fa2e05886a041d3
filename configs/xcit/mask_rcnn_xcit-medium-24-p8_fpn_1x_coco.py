# Mask R-CNN + FPN, XCiT-M24/8, COCO 1x single scale (ours; no published result).
_base_ = ['./_base_/mask_rcnn_1x.py']
model = dict(
    backbone=dict(
        arch='medium-24-p8',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_medium_24_p8_384_dist.pth')),
    neck=dict(in_channels=[512, 512, 512, 512]))
