# Default XCiT DINO: XCiT-S12/16, DINO 4-scale 12 epochs (see dino-4scale_xcit-small-12-p16_12e_coco.py).
_base_ = ['./dino-4scale_xcit-small-12-p16_12e_coco.py']
