# Cascade Mask R-CNN + FPN (4conv1fc SyncBN box heads, GIoU loss x10), GC ViT-T backbone, COCO 3x
# multi-scale + crop: the authors' recipe (detection/configs/gcvit/cascade_mask_rcnn_gcvit_tiny_3x_coco.py),
# see _cascade_mask_rcnn_fpn_3x_ms_coco.py. drop_path_rate 0.2 as in the authors' GC ViT-T configs.
# Published: GC ViT-T/S/B 85/108/146M params, box AP 51.6/52.4/52.9, mask AP 44.6/45.4/45.8.
_base_ = ['./_cascade_mask_rcnn_fpn_3x_ms_coco.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='tiny',
        window_size=24,
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_tiny.pth.tar')),
    neck=dict(in_channels=[64, 128, 256, 512]))
