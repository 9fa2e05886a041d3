# Default CrossFormer Mask R-CNN: CrossFormer-S, 1x (see mask_rcnn_crossformer-s_fpn_1x_coco.py).
_base_ = ['./mask_rcnn_crossformer-s_fpn_1x_coco.py']
