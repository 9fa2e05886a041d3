# Mask2Former, ADE20K 512x512, 160k iterations: mmseg 1.x's own recipe (mmseg::mask2former, which the
# TransNeXt authors' mmseg 1.0 config inherits unchanged): MSDeformAttn pixel decoder (3 levels),
# 9-layer transformer decoder, 100 queries; AdamW lr 1e-4, weight decay 0.05, eps 1e-8, grad clip 0.01;
# poly (power 0.9) over 160k iterations; 8 GPUs x 2 images. Family configs set `model.backbone`,
# `model.decode_head.in_channels` and their paramwise rules. Needs mmdet (its pixel decoder and losses).
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py']
# What ./custom_imports.py sets (not inherited: mmseg's base already sets custom_imports, and a key may
# come from one base only), plus mmseg's own import of mmdet.models.
custom_imports = dict(imports=['mmdet.models', 'mmvit_backbones'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]
model = dict(backbone=dict(_delete_=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)
