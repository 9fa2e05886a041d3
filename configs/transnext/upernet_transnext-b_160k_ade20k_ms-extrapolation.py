# UperNet with TransNeXt-Base, ADE20K 160k, multi-scale setting with position-bias extrapolation.
_base_ = ['./upernet_transnext-b_160k_ade20k_ms.py']

model = dict(backbone=dict(pos_bias_mode='extrapolate'))
