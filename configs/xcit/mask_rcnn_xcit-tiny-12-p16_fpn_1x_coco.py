# Mask R-CNN + FPN, XCiT-T12/16, COCO 1x single scale (ours; no published result).
_base_ = ['./_base_/mask_rcnn_1x.py']
model = dict(
    backbone=dict(
        arch='tiny-12-p16',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p16_384_dist.pth')),
    neck=dict(in_channels=[192, 192, 192, 192]))
