# Mask2Former with TransNeXt-Small, ADE20K 512x512, 160k iterations (authors: 54.1 mIoU, 69.0M params);
# the Tiny recipe (mask2former_transnext-t_160k_ade20k.py). Weights (whole model, mmseg 1.x keys):
# https://huggingface.co/DaiShiResearch/mask2former-transnext-small-ade/resolve/main/mask2former_transnext_small_512x512_160k_ade20k_in1k.pth
_base_ = ['./mask2former_transnext-t_160k_ade20k.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-small-224-1k/resolve/main/transnext_small_224_1k.pth'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.5, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
