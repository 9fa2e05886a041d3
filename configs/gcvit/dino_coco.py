# Default GC ViT DINO: GC ViT-T, 4-scale, 12 epochs (see dino-4scale_gcvit-t_12e_coco.py).
_base_ = ['./dino-4scale_gcvit-t_12e_coco.py']
