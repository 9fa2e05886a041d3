# DINO 5-scale, COCO, 12 epochs (mmdet's Swin-L recipe). Backbone returns all four stages.
_base_ = [
    'mmdet::dino/dino-5scale_swin-l_8xb2-12e_coco.py',
    './custom_imports.py',
]
model = dict(backbone=dict(_delete_=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)
