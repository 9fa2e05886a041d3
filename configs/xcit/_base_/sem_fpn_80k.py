# XCiT + Semantic FPN, ADE20K 512x512, 80k iterations, the authors' recipe
# (semantic_segmentation/configs/xcit/sem_fpn/sem_fpn_xcit_*_80k_ade20k.py): FPN and FPNHead inputs of
# embed_dim channels (the FPN keeps embed_dim channels, FPNHead 128), AdamW lr 6e-5, weight decay 0.01
# except parameters named `norm`, poly schedule (power 1, min lr 0) after a 1500-iteration linear
# warm-up, 8 GPUs x 2 images, whole-image test, fp32.
# Backbone norm: SyncBN in the patch embedding, the LPI layers and the 4x upsampler, as the authors train
# (8-GPU recipe; set model.backbone.norm_cfg=dict(type='BN') for a single process). ImageNet weights: the
# authors' 384-distilled files https://dl.fbaipublicfiles.com/xcit/xcit_<size>_<depth>_p<patch>_384_dist.pth
# named by URL in the variant configs (downloaded once into the torch hub cache).
_base_ = ['../../_base_/sem_fpn_80k_ade20k.py']
model = dict(backbone=dict(type='XCiT', norm_cfg=dict(type='SyncBN', requires_grad=True)))
optim_wrapper = dict(optimizer=dict(lr=6e-5, weight_decay=0.01),
                     paramwise_cfg=dict(custom_keys=dict(norm=dict(decay_mult=0.0))))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
auto_scale_lr = dict(base_batch_size=16)
