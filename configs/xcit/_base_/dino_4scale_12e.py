# XCiT + DINO 4-scale, COCO 12 epochs (ours: the authors published no DINO result). mmdet's DINO recipe:
# AdamW lr 1e-4, weight decay 1e-4, backbone lr x0.1, grad clip 0.1. The backbone returns strides 8/16/32
# (pyramid levels 1-3); the ChannelMapper adds the stride-64 level.
# Backbone norm: SyncBN in the patch embedding, the LPI layers and the 4x upsampler, as the authors train
# (8-GPU recipe; set model.backbone.norm_cfg=dict(type='BN') for a single process). ImageNet weights: the
# authors' 384-distilled files https://dl.fbaipublicfiles.com/xcit/xcit_<size>_<depth>_p<patch>_384_dist.pth
# named by URL in the variant configs (downloaded once into the torch hub cache).
_base_ = ['../../_base_/dino_4scale_12e_coco.py']
model = dict(backbone=dict(type='XCiT', out_indices=(1, 2, 3), norm_cfg=dict(type='SyncBN', requires_grad=True)))
