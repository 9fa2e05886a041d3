# Default CrossFormer UperNet: CrossFormer-S, 160k (see upernet_crossformer-s_160k_ade20k.py).
_base_ = ['./upernet_crossformer-s_160k_ade20k.py']
