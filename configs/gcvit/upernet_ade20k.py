# Default GC ViT UperNet: GC ViT-T, ADE20K 160k (see upernet_gcvit-t_160k_ade20k.py).
_base_ = ['./upernet_gcvit-t_160k_ade20k.py']
