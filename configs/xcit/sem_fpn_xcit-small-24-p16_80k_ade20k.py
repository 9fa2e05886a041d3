# Semantic FPN, XCiT-S24/16, ADE20K 80k: the authors' sem_fpn_xcit_small_24_p16_80k_ade20k.py
# (published: 44.6 mIoU, single scale). Weights (whole model, mmseg 0.x keys):
# https://dl.fbaipublicfiles.com/xcit/ade/sem_fpn_xcit_small_24_p16.pth
_base_ = ['./_base_/sem_fpn_80k.py']
model = dict(
    backbone=dict(
        arch='small-24-p16',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_24_p16_384_dist.pth')),
    neck=dict(in_channels=[384, 384, 384, 384], out_channels=384),
    decode_head=dict(in_channels=[384, 384, 384, 384]))
