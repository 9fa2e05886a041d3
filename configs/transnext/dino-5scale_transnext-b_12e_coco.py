# DINO 5-scale with TransNeXt-Base, COCO, 12 epochs (authors: 57.1 box AP, 110M params).
_base_ = ['./dino-5scale_transnext-t_12e_coco.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-base-224-1k/resolve/main/transnext_base_224_1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.6, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
