# UperNet, XCiT-S12/16, ADE20K 160k: the authors' upernet_xcit_small_12_p16_160k_ade20k.py (published: 45.9,
# single scale).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        arch='small-12-p16',
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_12_p16_384_dist.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
