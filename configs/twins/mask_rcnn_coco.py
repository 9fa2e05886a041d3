# Default Twins Mask R-CNN: Twins-PCPVT-S, 1x "PVT setting" (see mask_rcnn_twins-pcpvt-s_fpn_1x_coco.py).
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_1x_coco.py']
