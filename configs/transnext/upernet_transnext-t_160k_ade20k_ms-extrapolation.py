# UperNet with TransNeXt-Tiny, ADE20K 160k, multi-scale setting with position-bias extrapolation
# (authors: 51.7 mIoU ms+flip, 59M): the bias MLP is evaluated on each input's own grid.
_base_ = ['./upernet_transnext-t_160k_ade20k_ms.py']

model = dict(backbone=dict(pos_bias_mode='extrapolate'))
