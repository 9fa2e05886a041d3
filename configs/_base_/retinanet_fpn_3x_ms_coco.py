# RetinaNet + FPN, COCO, 3x (36 epochs, steps at 27 and 33, 500-iter linear warm-up) with the DETR-style
# multi-scale + crop augmentation of mmdet's Swin 3x recipe (boxes only; shorter side 480-800, or
# 400-600 -> crop 384-600 -> 480-800). Family configs set `model.backbone`, `model.neck.in_channels` and
# their optimizer rules.
_base_ = ['./retinanet_fpn_1x_coco.py']
_ms_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333),
              (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomChoice',
         transforms=[[dict(type='RandomChoiceResize', scales=_ms_scales, keep_ratio=True)],
                     [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                           keep_ratio=True),
                      dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                           allow_negative_crop=True),
                      dict(type='RandomChoiceResize', scales=_ms_scales, keep_ratio=True)]]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
