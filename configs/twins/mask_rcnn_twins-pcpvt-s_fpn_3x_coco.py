# Mask R-CNN + FPN, Twins-PCPVT-S, COCO 3x with DETR-style multi-scale + crop training: the authors'
# "Swin setting": AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05 with none on 'pos_block' (PEG)
# and 'norm' parameters; 500-iter linear warm-up, steps at epochs 27 and 33; mixed precision with a
# static loss scale of 512 (their `fp16 = dict(loss_scale=512.)`), here AmpOptimWrapper (needs a GPU).
# Source: detection/configs/mask_rcnn_pcpvt_s_fpn_3x_coco_swin_setting.py.
_base_ = ['../_base_/mask_rcnn_fpn_3x_ms_coco.py']
model = dict(
    backbone=dict(
        type='TwinsPCPVT',
        arch='small',
        drop_path_rate=0.2,
        # The authors publish pcpvt_small.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1TWIx_8M-4y6UOKtbCgm1v-UVQ-_lYe6X/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-small'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_small_20220308-e638c41c.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_small.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale=512.0,
    optimizer=dict(lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
