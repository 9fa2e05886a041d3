# DINO 4-scale, GC ViT-S backbone, COCO 12 epochs: mmdet's DINO recipe (AdamW lr 1e-4, weight decay
# 1e-4, backbone lr x0.1, grad clip 0.1, step at epoch 11), plus no decay on relative-position tables. The
# authors report DINO 4-scale (58.3 box AP, variant and pretraining not stated) but released no config.
# drop_path_rate 0.3 (ours: the authors published S/B results but no S/B config).
_base_ = ['../_base_/dino_4scale_12e_coco.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='small',
        window_size=24,
        drop_path_rate=0.3,
        out_indices=(1, 2, 3),
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar')),
    neck=dict(in_channels=[192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={
    # longest matching key wins in mmengine, so the table rule repeats the backbone lr_mult
    'relative_position_bias_table': dict(lr_mult=0.1, decay_mult=0.0)}))
