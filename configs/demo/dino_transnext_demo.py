# The demo's detection job: DINO (4-scale, as configs/transnext/dino_coco.py) with a reduced transformer on the
# small TransNeXt backbone of configs/demo/upernet_transnext_demo.py, trained on the generated COCO-layout
# shapes dataset (tools/make_demo_data.py) and evaluated with COCO bbox mAP on the held-out validation split.
# `make demo` trains the segmentor first and starts this backbone from its checkpoint through init_cfg
# (backbone.-prefixed keys: the path the authors' checkpoints take):
#   --cfg-options model.backbone.init_cfg.type=Pretrained \
#                 model.backbone.init_cfg.checkpoint=work_dirs/demo_upernet/iter_400.pth
# docs/demo.md says why the detector is this reduced DINO.
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    '../_base_/custom_imports.py',
]
data_root = 'data/demo/coco/'
classes = ('circle', 'square', 'triangle')
metainfo = dict(classes=classes, palette=[(220, 60, 60), (60, 180, 75), (70, 110, 230)])
img_scale = (128, 128)
# must equal configs/demo/upernet_transnext_demo.py's arch, so the segmentor's backbone loads
demo_arch = dict(embed_dims=[32, 64, 128, 256], depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8])
# 3 levels: the backbone's strides 16 and 32 plus ChannelMapper's stride-64 level (the shapes are 30-60 px)
num_levels = 3

# Reduced for CPU speed: 2 + 3 transformer layers (6 + 6), FFN 512 (2048), 50 queries (900), 20 denoising
# queries (100). The transformer stays 256 wide: mmdet 3.3's DINO decoder hard-codes a 512-wide sine embedding
# of the reference points (num_feats=128), so a narrower one does not build.
model = dict(
    num_queries=50,
    num_feature_levels=num_levels,
    backbone=dict(
        _delete_=True,
        type='TransNeXt',
        arch=demo_arch,
        out_indices=(2, 3),
        drop_path_rate=0.0,
        pos_bias_mode='interpolate',
        img_size=img_scale[0]),
    neck=dict(in_channels=demo_arch['embed_dims'][2:], num_outs=num_levels),
    encoder=dict(num_layers=2, layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels),
                                              ffn_cfg=dict(feedforward_channels=512))),
    decoder=dict(num_layers=3, layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels),
                                              ffn_cfg=dict(feedforward_channels=512))),
    bbox_head=dict(num_classes=len(classes)),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=100))

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 8
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[7], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=4e-4), clip_grad=dict(max_norm=1.0),
                     paramwise_cfg=dict(custom_keys=dict(backbone=dict(lr_mult=0.5))))
# draw=True: 4 validation images per evaluation (the first of every 3rd batch), ground truth left and predictions
# (score >= 0.3) right, saved by the LocalVisBackend as <work_dir>/<timestamp>/vis_data/vis_image/val_img_<iter>.png
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1),
                     visualization=dict(type='DetVisualizationHook', draw=True, interval=3, score_thr=0.3))
randomness = dict(seed=0, deterministic=False)
