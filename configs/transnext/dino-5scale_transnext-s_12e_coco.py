# DINO 5-scale with TransNeXt-Small, COCO, 12 epochs (authors: 56.6 box AP, 69.6M params).
_base_ = ['./dino-5scale_transnext-t_12e_coco.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-small-224-1k/resolve/main/transnext_small_224_1k.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.5, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
