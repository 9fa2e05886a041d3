# Mask2Former with TransNeXt-Tiny, ADE20K 512x512, 160k iterations (authors: 53.4 mIoU, 47.5M params).
# Recipe of segmentation/mask2former/configs/mask2former_transnext_tiny_160k_ade20k-512x512.py (mmseg 1.0):
# mmseg's Mask2Former R-50 recipe (AdamW 1e-4, wd 0.05, eps 1e-8, grad clip 0.01, poly power 0.9,
# 2 images x 8 GPUs) with backbone lr x0.1, no decay on biases, norms and the attention's own tables, and
# no decay on the head's query and level embeddings.
# Weights (whole model, mmseg 1.x keys; a direct download):
# https://huggingface.co/DaiShiResearch/mask2former-transnext-tiny-ade/resolve/main/mask2former_transnext_tiny_512x512_160k_ade20k_in1k.pth
_base_ = ['../_base_/mask2former_160k_ade20k.py']

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

# The authors' comprehensions for the stage norms and patch embeddings use range(len(depths) - 1), which
# leaves patch_embed4.* and norm4.* at lr x1.0; here the multiplier covers the WHOLE backbone, as in
# dino-4scale_transnext-t_12e_coco.py.
backbone_decay = dict(lr_mult=0.1)
backbone_nodecay = dict(lr_mult=0.1, decay_mult=0.0)
embed_nodecay = dict(lr_mult=1.0, decay_mult=0.0)
custom_keys = {
    'attn.query_embedding': backbone_nodecay,
    'relative_pos_bias_local': backbone_nodecay,
    'cpb': backbone_nodecay,
    'temperature': backbone_nodecay,
    'attn.learnable': backbone_decay,
    'attn.q.weight': backbone_decay,
    'attn.q.bias': backbone_nodecay,
    'attn.kv.weight': backbone_decay,
    'attn.kv.bias': backbone_nodecay,
    'attn.qkv.weight': backbone_decay,
    'attn.qkv.bias': backbone_nodecay,
    'attn.sr.weight': backbone_decay,
    'attn.sr.bias': backbone_nodecay,
    'attn.norm': backbone_nodecay,
    'attn.proj.weight': backbone_decay,
    'attn.proj.bias': backbone_nodecay,
    'mlp.fc1.weight': backbone_decay,
    'mlp.fc1.bias': backbone_nodecay,
    'mlp.fc2.weight': backbone_decay,
    'mlp.fc2.bias': backbone_nodecay,
    'mlp.dwconv.dwconv.weight': backbone_decay,
    'mlp.dwconv.dwconv.bias': backbone_nodecay,
    'decode_head.query_embed': embed_nodecay,
    'decode_head.query_feat': embed_nodecay,
    'decode_head.level_embed': embed_nodecay,
}
custom_keys.update({f'backbone.norm{s}': backbone_nodecay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.norm': backbone_nodecay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.proj.weight': backbone_decay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.proj.bias': backbone_nodecay for s in range(1, 5)})
# block norms: up to 32 blocks per stage covers every arch (at most 23); extra keys match nothing
custom_keys.update({f'backbone.block{s}.{b}.norm': backbone_nodecay for s in range(1, 5) for b in range(32)})
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=custom_keys, bias_decay_mult=0.0, norm_decay_mult=0.0, flat_decay_mult=0.0))
