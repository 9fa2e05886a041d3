# Default TransNeXt DINO (the project's headline): DINO 4-scale TransNeXt-Tiny, 12 epochs.
_base_ = ['./dino-4scale_transnext-t_12e_coco.py']
