# Semantic FPN, CrossFormer-S backbone, ADE20K 512x512, 80k iterations: the authors' recipe
# (segmentation/configs/crossformer/fpn_crossformer_s_ade20k_40k.py;
# the file says 40k, it runs 80k iterations):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 0), no warm-up; FPN 256
# channels, FPNHead 128; 4 images per GPU, total batch 16 (their README); whole-image test.
# Published: 46.4 mIoU, single scale (cheerss/CrossFormer READMEs). Weights (whole model,
# mmseg 0.x keys; no direct link, download by hand): https://drive.google.com/file/d/1I-zpGG5rvkTtrTUnOF8Fx11yeb6pXGYi/view
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1RAkigsgr33va0RZ85S2Shs2BhXYcS6U8/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-s.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)]
auto_scale_lr = dict(base_batch_size=16)
