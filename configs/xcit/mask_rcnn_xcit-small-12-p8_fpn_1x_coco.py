# Mask R-CNN + FPN, XCiT-S12/8, COCO 1x single scale (ours; no published result).
_base_ = ['./_base_/mask_rcnn_1x.py']
model = dict(
    backbone=dict(
        arch='small-12-p8',
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_12_p8_384_dist.pth')),
    neck=dict(in_channels=[384, 384, 384, 384]))
