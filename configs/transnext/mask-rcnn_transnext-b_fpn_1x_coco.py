# Mask R-CNN 1x with TransNeXt-Base, COCO (authors: 51.7 box / 45.9 mask AP, 109.2M params).
# The authors trained this one with fp16 (static loss scale 512); AMP here goes through AmpOptimWrapper.
_base_ = ['./mask-rcnn_transnext-t_fpn_1x_coco.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-base-224-1k/resolve/main/transnext_base_224_1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.7, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512.0)
