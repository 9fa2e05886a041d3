# Default TransNeXt UperNet: TransNeXt-Tiny, ADE20K 160k, single-scale setting.
_base_ = ['./upernet_transnext-t_160k_ade20k_ss.py']
