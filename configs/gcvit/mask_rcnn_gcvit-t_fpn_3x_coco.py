# Mask R-CNN + FPN, GC ViT-T backbone, COCO 3x with DETR-style multi-scale + crop training: the authors'
# recipe (detection/configs/gcvit/mask_rcnn_gcvit_tiny_3x_coco.py): AdamW lr 1e-4, betas (0.9, 0.999), weight
# decay 0.05; 2500-iter linear warm-up from 1e-3, steps at epochs 27 and 33; fp16 (here AmpOptimWrapper);
# 2 images per GPU. Their file lists no-decay keys 'rpb' (matches no parameter) and 'norm'; we use what they
# meant and their Cascade config spells out: no decay on relative-position tables and norms.
# drop_path_rate 0.2 as in the authors' GC ViT-T configs. Published: 48M params, box AP 47.9, mask AP 43.2.
_base_ = ['../_base_/mask_rcnn_fpn_3x_ms_coco.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='tiny',
        window_size=24,
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar')),
    neck=dict(in_channels=[64, 128, 256, 512]))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=2500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0)}))
