# Mask R-CNN + FPN, COCO, 1x (12 epochs, steps at 8 and 11), single scale 1333x800.
# Family configs set `model.backbone`, `model.neck.in_channels` and their `optim_wrapper`.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './custom_imports.py',
]
model = dict(backbone=dict(_delete_=True))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
# 8 GPUs x 2 images; mmengine rescales lr if you train with another total batch and enable it.
auto_scale_lr = dict(enable=False, base_batch_size=16)
