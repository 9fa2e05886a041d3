# Default TransNeXt Mask R-CNN: TransNeXt-Tiny, 1x schedule.
_base_ = ['./mask-rcnn_transnext-t_fpn_1x_coco.py']
