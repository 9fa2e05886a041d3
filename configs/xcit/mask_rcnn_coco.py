# Default XCiT Mask R-CNN: XCiT-S12/16, the authors' 3x recipe (see mask_rcnn_xcit-small-12-p16_fpn_3x_coco.py).
_base_ = ['./mask_rcnn_xcit-small-12-p16_fpn_3x_coco.py']
