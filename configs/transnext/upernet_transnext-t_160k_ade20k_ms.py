# UperNet with TransNeXt-Tiny, ADE20K 160k, multi-scale setting (authors: 51.5 mIoU ms+flip, 59M).
# The bias is generated for 800x800 and resized; whole-image inference. Evaluate multi-scale + flip
# with `tools/test.py CONFIG CKPT --tta` (the ADE20K base config defines the TTA pipeline).
_base_ = ['./upernet_transnext-t_160k_ade20k_ss.py']

model = dict(backbone=dict(img_size=800), test_cfg=dict(_delete_=True, mode='whole'))
