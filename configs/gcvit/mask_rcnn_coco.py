# Default GC ViT Mask R-CNN: GC ViT-T, 3x multi-scale, the authors' published setting (see
# mask_rcnn_gcvit-t_fpn_3x_coco.py; the 1x variant is mask_rcnn_gcvit-t_fpn_1x_coco.py).
_base_ = ['./mask_rcnn_gcvit-t_fpn_3x_coco.py']
