# DINO 4-scale, XCiT-T12/16, COCO 12 epochs (ours; no published result).
_base_ = ['./_base_/dino_4scale_12e.py']
model = dict(
    backbone=dict(
        arch='tiny-12-p16',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p16_384_dist.pth')),
    neck=dict(in_channels=[192, 192, 192]))
