# Semantic FPN, CrossFormer++-B backbone, ADE20K 512x512, 80k iterations: the authors' recipe
# (no config released for ++-B; the ++-S recipe with ++-B's drop path 0.3):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 0), no warm-up; FPN 256
# channels, FPNHead 128; 4 images per GPU, total batch 16 (their README); whole-image test.
# Published: 48.6 mIoU, single scale (cheerss/CrossFormer README); no released weights
# (README: "to be uploaded").
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='pp-base',
        drop_path_rate=0.3,
        # No direct link: download by hand from the authors' Baidu Cloud (no Google Drive copy),
        # https://pan.baidu.com/s/13XVP0ebtNcyRMmkl11ALYg?pwd=crsf (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-pp-b.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)]
auto_scale_lr = dict(base_batch_size=16)
