# UperNet with TransNeXt-Base, ADE20K 160k, single-scale setting
# (authors, ss; ms+flip interpolate / extrapolate: 53.0; 53.5 / 53.7 mIoU, 121M).
_base_ = ['./upernet_transnext-t_160k_ade20k_ss.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-base-224-1k/resolve/main/transnext_base_224_1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
