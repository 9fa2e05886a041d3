# Mask R-CNN + FPN, GC ViT-S backbone, COCO 3x: the authors' GC ViT-T recipe (see
# mask_rcnn_gcvit-t_fpn_3x_coco.py) with drop_path_rate 0.3 (ours: the authors published S/B results but no
# S/B config). Published only for GC ViT-T: 48M params, box AP 47.9, mask AP 43.2.
_base_ = ['./mask_rcnn_gcvit-t_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar')),
    neck=dict(in_channels=[96, 192, 384, 768]))
