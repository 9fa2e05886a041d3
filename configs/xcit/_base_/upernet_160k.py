# XCiT + UperNet, ADE20K 512x512, 160k iterations, the authors' recipe
# (semantic_segmentation/configs/xcit/upernet/upernet_xcit_*_160k_ade20k.py): AdamW lr 6e-5, weight decay
# 0.01 except parameters named `norm`, poly schedule (power 1) after a 1500-iteration linear warm-up,
# 8 GPUs x 2 images, whole-image test, fp32.
# Backbone norm: SyncBN in the patch embedding, the LPI layers and the 4x upsampler, as the authors train
# (8-GPU recipe; set model.backbone.norm_cfg=dict(type='BN') for a single process). ImageNet weights: the
# authors' 384-distilled files https://dl.fbaipublicfiles.com/xcit/xcit_<size>_<depth>_p<patch>_384_dist.pth
# named by URL in the variant configs (downloaded once into the torch hub cache).
_base_ = ['../../_base_/upernet_160k_ade20k.py']
model = dict(backbone=dict(type='XCiT', norm_cfg=dict(type='SyncBN', requires_grad=True)))
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=dict(norm=dict(decay_mult=0.0))))
