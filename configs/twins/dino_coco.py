# Default Twins DINO: Twins-PCPVT-S, 4-scale, 12 epochs (see dino-4scale_twins-pcpvt-s_12e_coco.py).
_base_ = ['./dino-4scale_twins-pcpvt-s_12e_coco.py']
