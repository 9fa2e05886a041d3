# DINO 4-scale, XCiT-S12/8, COCO 12 epochs (ours; no published result).
_base_ = ['./_base_/dino_4scale_12e.py']
model = dict(
    backbone=dict(
        arch='small-12-p8',
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_12_p8_384_dist.pth')),
    neck=dict(in_channels=[384, 384, 384]))
