# UperNet, XCiT-M24/16, ADE20K 160k: the authors' upernet_xcit_medium_24_p16_160k_ade20k.py (published: 47.6,
# single scale).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        arch='medium-24-p16',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_medium_24_p16_384_dist.pth')),
    decode_head=dict(in_channels=[512, 512, 512, 512]),
    auxiliary_head=dict(in_channels=512))
