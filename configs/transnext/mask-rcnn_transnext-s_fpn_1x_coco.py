# Mask R-CNN 1x with TransNeXt-Small, COCO (authors: 51.1 box / 45.5 mask AP, 69.3M params).
_base_ = ['./mask-rcnn_transnext-t_fpn_1x_coco.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-small-224-1k/resolve/main/transnext_small_224_1k.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.6, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
