# Semantic FPN (FPN neck + FPNHead), ADE20K 512x512, 80k iterations: mmseg's FPN model, dataset and 80k
# schedule (poly, power 0.9), single-scale whole-image test. Family configs set `model.backbone`,
# `model.neck.in_channels`, their optimizer and the schedule's minimum lr.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
    './custom_imports.py',
]
crop_size = (512, 512)
model = dict(
    pretrained=None,  # mmseg's ResNet-50 checkpoint; our backbones load through their own init_cfg
    data_preprocessor=dict(size=crop_size),
    backbone=dict(_delete_=True),
    decode_head=dict(num_classes=150))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4))
train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
# 8 GPUs x 4 images (mmseg's and Twins' "8x4"); families that train otherwise say so.
auto_scale_lr = dict(enable=False, base_batch_size=32)
