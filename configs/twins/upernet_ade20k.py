# Default Twins UperNet: Twins-PCPVT-S, ADE20K 160k (see upernet_twins-pcpvt-s_160k_ade20k.py).
_base_ = ['./upernet_twins-pcpvt-s_160k_ade20k.py']
