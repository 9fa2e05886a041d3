# Mask2Former with TransNeXt-Base, ADE20K 512x512, 160k iterations (authors: 54.7 mIoU, 109M params);
# the Tiny recipe (mask2former_transnext-t_160k_ade20k.py). Weights (whole model, mmseg 1.x keys):
# https://huggingface.co/DaiShiResearch/mask2former-transnext-base-ade/resolve/main/mask2former_transnext_base_512x512_160k_ade20k_in1k.pth
_base_ = ['./mask2former_transnext-t_160k_ade20k.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-base-224-1k/resolve/main/transnext_base_224_1k.pth'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.6, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]))
