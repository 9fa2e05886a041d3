# XCiT + Mask R-CNN, COCO 3x, the authors' recipe (detection/configs/xcit/mask_rcnn_xcit_*_3x_coco.py):
# DETR-style multi-scale + crop augmentation, AdamW lr 1e-4, weight decay 0.05 except parameters named
# `norm` (their custom_keys; the other two keys match nothing in XCiT), steps at 27 and 33, 500-iteration
# warm-up (their schedule_1x base), mixed precision (apex there, AmpOptimWrapper here), 8 GPUs x 2 images.
# Backbone norm: SyncBN in the patch embedding, the LPI layers and the 4x upsampler, as the authors train
# (8-GPU recipe; set model.backbone.norm_cfg=dict(type='BN') for a single process). ImageNet weights: the
# authors' 384-distilled files https://dl.fbaipublicfiles.com/xcit/xcit_<size>_<depth>_p<patch>_384_dist.pth
# named by URL in the variant configs (downloaded once into the torch hub cache).
_base_ = ['../../_base_/mask_rcnn_fpn_3x_ms_coco.py']
model = dict(backbone=dict(type='XCiT', norm_cfg=dict(type='SyncBN', requires_grad=True)))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    paramwise_cfg=dict(custom_keys=dict(norm=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
