# Semantic FPN, XCiT-T12/16, ADE20K 80k: the authors' sem_fpn_xcit_tiny_12_p16_80k_ade20k.py
# (published: 38.1 mIoU, single scale). Weights (whole model, mmseg 0.x keys):
# https://dl.fbaipublicfiles.com/xcit/ade/sem_fpn_xcit_tiny_12_p16.pth
_base_ = ['./_base_/sem_fpn_80k.py']
model = dict(
    backbone=dict(
        arch='tiny-12-p16',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p16_384_dist.pth')),
    neck=dict(in_channels=[192, 192, 192, 192], out_channels=192),
    decode_head=dict(in_channels=[192, 192, 192, 192]))
