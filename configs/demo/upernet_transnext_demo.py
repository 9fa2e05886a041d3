# The demo's segmentation job: a small TransNeXt (reduced arch, the same code path as transnext-tiny) UperNet
# trained from scratch on the generated ADE20K-layout shapes dataset (tools/make_demo_data.py), evaluated with
# mIoU on the held-out validation split. CPU, about 3 minutes on 2 cores. `make demo` then starts the detector
# configs/demo/dino_transnext_demo.py from this run's backbone.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/default_runtime.py',
    '../_base_/custom_imports.py',
]
data_root = 'data/demo/ade/'
classes = ('background', 'circle', 'square', 'triangle')
# overlay colours that differ from the shapes' own, so a drawn prediction is told apart from the image
metainfo = dict(classes=classes, palette=[[40, 40, 40], [255, 220, 0], [255, 0, 255], [0, 255, 255]])
crop_size = (128, 128)
# transnext-tiny is dims (72, 144, 288, 576), depths (2, 2, 15, 2), heads (3, 6, 12, 24)
demo_arch = dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
dims = demo_arch['embed_dims']
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='TransNeXt',
        arch=demo_arch,
        drop_path_rate=0.0,
        pos_bias_mode='interpolate',
        img_size=crop_size[0]),
    decode_head=dict(in_channels=dims, channels=64, num_classes=len(classes), norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=dims[2], channels=32, num_classes=len(classes), norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False, sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 400
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=30, end=max_iters, by_epoch=False),
]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.01))
# draw=True: every 8th validation image with its predicted overlay, saved by the LocalVisBackend under
# <work_dir>/<timestamp>/vis_data/vis_image/
default_hooks = dict(logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1),
                     visualization=dict(type='SegVisualizationHook', draw=True, interval=8))
randomness = dict(seed=0, deterministic=False)
