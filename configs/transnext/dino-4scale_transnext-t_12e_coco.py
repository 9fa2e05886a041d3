# DINO 4-scale with TransNeXt-Tiny, COCO, 12 epochs: the authors' recipe
# (detection/dino/configs/dino-4scale_transnext_tiny-12e_coco.py), published 55.1 box AP, 47.8M params.
# The backbone returns stages 2-4 (strides 8/16/32); ChannelMapper adds the stride-64 level.
_base_ = ['../_base_/dino_4scale_12e_coco.py', './_base_/backbone_paramwise.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-tiny-224-1k/resolve/main/transnext_tiny_224_1k.pth'
num_levels = 4
model = dict(
    num_feature_levels=num_levels,
    backbone=dict(
        type='TransNeXt',
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.3,  # hard-coded for DINO in the authors' code
        pos_bias_mode='interpolate',  # bias generated for an 800x800 input and resized: their setting
        img_size=800,
        pretrain_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[144, 288, 576], num_outs=num_levels),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))

# Backbone lr x0.1, no decay on biases, norms and the attention's tables (./_base_/backbone_paramwise.py).
# AdamW 1e-4, wd 0.05, grad clip 0.1; 1 image per GPU x 8 GPUs, accumulated twice = batch 16.
# AMP through AmpOptimWrapper: the authors' top-level `fp16 = dict(loss_scale=512.)` is never read by
# mmdet 3.x, so their run was fp32; use type='OptimWrapper' for an exact reproduction.
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    accumulative_counts=2,
    paramwise_cfg=dict(custom_keys=_base_.custom_keys, bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0))
train_dataloader = dict(batch_size=1)
