# RetinaNet + FPN, COCO, 1x (12 epochs, steps at 8 and 11, 500-iter linear warm-up), single scale 1333x800:
# the "PVT setting" of Twins and CrossFormer (AdamW lr 1e-4, weight decay 1e-4, default betas, no paramwise
# rules). mmdet's RetinaNet FPN already takes strides 8-32 (start_level=1) and adds P6/P7 on the input
# (add_extra_convs='on_input'), as the authors' configs. Family configs set `model.backbone` and
# `model.neck.in_channels` (all four stages; the stride-4 map is built but unused, as theirs).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './custom_imports.py',
]
model = dict(backbone=dict(_delete_=True))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
# 8 GPUs x 2 images; mmengine rescales lr if you train with another total batch and enable it.
auto_scale_lr = dict(enable=False, base_batch_size=16)
