# XCiT + Mask R-CNN, COCO 1x single scale (ours: the authors published 3x only). Same optimizer as their
# 3x recipe (AdamW lr 1e-4, weight decay 0.05 except `norm`, mixed precision), steps at 8 and 11.
# Backbone norm: SyncBN in the patch embedding, the LPI layers and the 4x upsampler, as the authors train
# (8-GPU recipe; set model.backbone.norm_cfg=dict(type='BN') for a single process). ImageNet weights: the
# authors' 384-distilled files https://dl.fbaipublicfiles.com/xcit/xcit_<size>_<depth>_p<patch>_384_dist.pth
# named by URL in the variant configs (downloaded once into the torch hub cache).
_base_ = ['../../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(backbone=dict(type='XCiT', norm_cfg=dict(type='SyncBN', requires_grad=True)))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(custom_keys=dict(norm=dict(decay_mult=0.0))))
