# Semantic FPN, XCiT-M24/8, ADE20K 80k: the authors' sem_fpn_xcit_medium_24_p8_80k_ade20k.py
# (published: 46.9 mIoU, single scale). Weights (whole model, mmseg 0.x keys):
# https://dl.fbaipublicfiles.com/xcit/ade/sem_fpn_xcit_medium_24_p8.pth
_base_ = ['./_base_/sem_fpn_80k.py']
model = dict(
    backbone=dict(
        arch='medium-24-p8',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_medium_24_p8_384_dist.pth')),
    neck=dict(in_channels=[512, 512, 512, 512], out_channels=512),
    decode_head=dict(in_channels=[512, 512, 512, 512]))
