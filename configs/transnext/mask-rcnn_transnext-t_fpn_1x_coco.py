# Mask R-CNN 1x with TransNeXt-Tiny, COCO (authors: 49.9 box / 44.6 mask AP, 47.9M params).
# Recipe of detection/maskrcnn/configs/mask_rcnn_transnext_tiny_fpn_1x_coco.py: AdamW 1e-4, wd 0.05,
# no decay on the attention's tables and on norms, 2 images x 8 GPUs, single scale 1333x800.
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-tiny-224-1k/resolve/main/transnext_tiny_224_1k.pth'
model = dict(
    backbone=dict(
        type='TransNeXt',
        arch='tiny',
        drop_path_rate=0.4,  # hard-coded for Mask R-CNN in the authors' code
        pos_bias_mode='interpolate',
        img_size=800,
        pretrain_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[72, 144, 288, 576]))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'query_embedding': dict(decay_mult=0.0),
        'relative_pos_bias_local': dict(decay_mult=0.0),
        'cpb': dict(decay_mult=0.0),
        'temperature': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
    }))
