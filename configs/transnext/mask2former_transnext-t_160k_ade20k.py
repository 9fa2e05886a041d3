# Mask2Former with TransNeXt-Tiny, ADE20K 512x512, 160k iterations (authors: 53.4 mIoU, 47.5M params).
# Recipe of segmentation/mask2former/configs/mask2former_transnext_tiny_160k_ade20k-512x512.py (mmseg 1.0):
# mmseg's Mask2Former R-50 recipe (AdamW 1e-4, wd 0.05, eps 1e-8, grad clip 0.01, poly power 0.9,
# 2 images x 8 GPUs) with backbone lr x0.1, no decay on biases, norms and the attention's own tables, and
# no decay on the head's query and level embeddings.
# Weights (whole model, mmseg 1.x keys; a direct download):
# https://huggingface.co/DaiShiResearch/mask2former-transnext-tiny-ade/resolve/main/mask2former_transnext_tiny_512x512_160k_ade20k_in1k.pth
_base_ = ['../_base_/mask2former_160k_ade20k.py', './_base_/backbone_paramwise.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-tiny-224-1k/resolve/main/transnext_tiny_224_1k.pth'
model = dict(
    backbone=dict(
        type='TransNeXt',
        arch='tiny',
        drop_path_rate=0.3,  # hard-coded for Mask2Former in the authors' code
        pos_bias_mode='interpolate',
        img_size=512,  # bias generated for 512x512 crops and resized: their setting
        pretrain_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[72, 144, 288, 576]))

# Backbone lr x0.1 as the DINO configs (./_base_/backbone_paramwise.py); no decay on the head's embeddings.
embed_nodecay = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    **_base_.custom_keys,
    'decode_head.query_embed': embed_nodecay,
    'decode_head.query_feat': embed_nodecay,
    'decode_head.level_embed': embed_nodecay,
}
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=custom_keys, bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0))
