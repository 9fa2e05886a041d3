# UperNet, CrossFormer-S backbone, ADE20K 512x512, 160k iterations: the authors' recipe (AdamW lr 6e-5,
# betas (0.9, 0.999), weight decay 0.01 with none on 'norm' parameters; poly power 1.0 after a 1500-iter
# linear warm-up; 2 images x 8 GPUs).
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-s.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    # Stage 3 has 384 channels. (The authors' main-branch CrossFormer-S file sets 256 here, a bug that
    # cannot run; their v1-branch file has the right value.)
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.0)}))
