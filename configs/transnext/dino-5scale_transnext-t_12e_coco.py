# DINO 5-scale with TransNeXt-Tiny, COCO, 12 epochs (authors: 55.7 box AP, 48.1M params).
# Same recipe as the 4-scale model; the backbone returns all four stages and ChannelMapper adds a 5th.
_base_ = ['./dino-4scale_transnext-t_12e_coco.py']

num_levels = 5
model = dict(
    num_feature_levels=num_levels,
    backbone=dict(out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[72, 144, 288, 576], num_outs=num_levels),
    encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels))),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))))
