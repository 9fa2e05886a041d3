# Mask R-CNN + FPN, GC ViT-T backbone, COCO 1x (12 epochs, 1333x800). The authors published only 3x
# results; this keeps their optimizer (AdamW lr 1e-4, weight decay 0.05, none on relative-position tables and
# norms, AMP) on mmdet's 1x schedule. drop_path_rate 0.2 as in the authors' GC ViT-T configs.
# init_cfg: the authors' ImageNet checkpoint as downloaded; tables are resized to window 24 on load.
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='tiny',
        window_size=24,
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar')),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0)}))
