# UperNet, XCiT-T12/16, ADE20K 160k: the authors' upernet_xcit_tiny_12_p16_160k_ade20k.py (published: 41.5 mIoU,
# single scale).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        arch='tiny-12-p16',
        drop_path_rate=0.0,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://dl.fbaipublicfiles.com/xcit/xcit_tiny_12_p16_384_dist.pth')),
    decode_head=dict(in_channels=[192, 192, 192, 192]),
    auxiliary_head=dict(in_channels=192))
