# Cascade Mask R-CNN + FPN (4conv1fc SyncBN box heads, GIoU loss x10), GC ViT-B backbone, COCO 3x
# multi-scale + crop: the authors' recipe (detection/configs/gcvit/cascade_mask_rcnn_gcvit_tiny_3x_coco.py),
# see _cascade_mask_rcnn_fpn_3x_ms_coco.py.
# drop_path_rate 0.3 (ours: the authors published S/B results but no S/B config).
# Published: GC ViT-T/S/B 85/108/146M params, box AP 51.6/52.4/52.9, mask AP 44.6/45.4/45.8.
_base_ = ['./_cascade_mask_rcnn_fpn_3x_ms_coco.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='base',
        window_size=24,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_base.pth.tar')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
