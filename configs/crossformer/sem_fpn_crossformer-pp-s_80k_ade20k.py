# Semantic FPN, CrossFormer++-S backbone, ADE20K 512x512, 80k iterations: the authors' recipe
# (segmentation/configs/crossformer_pp/fpn_crossformerpp_s_ade20k_40k.py;
# the file says 40k, it runs 80k iterations):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 0), no warm-up; FPN 256
# channels, FPNHead 128; 4 images per GPU, total batch 16 (their README); whole-image test.
# Published: 47.4 mIoU, single scale (cheerss/CrossFormer README); no released weights
# (README: "to be uploaded").
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='pp-small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Baidu Cloud (no Google Drive copy),
        # https://pan.baidu.com/s/1smc_kRoogd0Ig5vfqwuGTA?pwd=crsf (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-pp-s.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)]
auto_scale_lr = dict(base_batch_size=16)
