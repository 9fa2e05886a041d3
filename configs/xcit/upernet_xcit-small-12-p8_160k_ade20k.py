# UperNet, XCiT-S12/8, ADE20K 160k: the authors' upernet_xcit_small_12_p8_160k_ade20k.py (published: 46.6,
# single scale).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        arch='small-12-p8',
        drop_path_rate=0.05,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_small_12_p8_384_dist.pth')),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384))
