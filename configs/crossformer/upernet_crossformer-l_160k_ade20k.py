# UperNet, CrossFormer-L backbone, ADE20K 512x512, 160k iterations: the authors' recipe (AdamW lr 6e-5,
# betas (0.9, 0.999), weight decay 0.01 with none on 'norm' parameters; poly power 1.0 after a 1500-iter
# linear warm-up; 2 images x 8 GPUs).
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='large',
        drop_path_rate=0.5,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1zRWByVW_KIZ87NgaBkDIm60DAsGJErdG/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-l.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}))
