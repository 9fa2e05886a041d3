# UperNet with TransNeXt-Base, ADE20K 160k, multi-scale setting: bias generated for 800x800,
# whole-image inference; evaluate with `tools/test.py CONFIG CKPT --tta`.
_base_ = ['./upernet_transnext-b_160k_ade20k_ss.py']

model = dict(backbone=dict(img_size=800), test_cfg=dict(_delete_=True, mode='whole'))
