# UperNet, CrossFormer++-S backbone, ADE20K 512x512, 160k iterations: the authors' recipe (AdamW lr 6e-5,
# betas (0.9, 0.999), weight decay 0.01 with none on 'norm' parameters; poly power 1.0 after a 1500-iter
# linear warm-up; 2 images x 8 GPUs).
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='pp-small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Baidu Cloud (no Google Drive copy),
        # https://pan.baidu.com/s/1smc_kRoogd0Ig5vfqwuGTA?pwd=crsf (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-pp-s.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}))
