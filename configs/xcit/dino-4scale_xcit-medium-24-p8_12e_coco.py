# DINO 4-scale, XCiT-M24/8, COCO 12 epochs (ours; no published result).
_base_ = ['./_base_/dino_4scale_12e.py']
model = dict(
    backbone=dict(
        arch='medium-24-p8',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_medium_24_p8_384_dist.pth')),
    neck=dict(in_channels=[512, 512, 512]))
