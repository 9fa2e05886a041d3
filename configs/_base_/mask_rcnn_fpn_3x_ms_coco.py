# Mask R-CNN + FPN, COCO, 3x (36 epochs, steps at 27 and 33), DETR-style multi-scale + crop augmentation
# (the "Swin setting"). Family configs set `model.backbone`, `model.neck.in_channels` and `optim_wrapper`.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
    './custom_imports.py',
]
model = dict(backbone=dict(_delete_=True))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
