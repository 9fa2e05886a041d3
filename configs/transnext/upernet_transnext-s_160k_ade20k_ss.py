# UperNet with TransNeXt-Small, ADE20K 160k, single-scale setting
# (authors, ss; ms+flip interpolate / extrapolate: 52.2; 52.5 / 52.8 mIoU, 80M).
_base_ = ['./upernet_transnext-t_160k_ade20k_ss.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-small-224-1k/resolve/main/transnext_small_224_1k.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.6, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[72, 144, 288, 576]),
    auxiliary_head=dict(in_channels=288))
