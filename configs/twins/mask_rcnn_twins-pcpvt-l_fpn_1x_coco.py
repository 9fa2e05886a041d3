# Mask R-CNN + FPN, Twins-PCPVT-L, COCO 1x: the authors' "PVT setting"
# (detection/configs/mask_rcnn_pcpvt_l_fpn_1x_coco_pvt_setting.py):
# AdamW lr 2e-4, weight decay 1e-4, default betas, no paramwise rules; 500-iter linear warm-up, steps at
# epochs 8 and 11; 2 images x 8 GPUs; single scale 1333x800. Drop path 0.2 is the value the authors'
# dense code hard-codes. init_cfg takes their ImageNet checkpoint as released (no offline step).
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsPCPVT',
        arch='large',
        drop_path_rate=0.2,
        # The authors publish pcpvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/17xZXOWEcSGs0quBmMEkBYCxjPRYH-L45/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_large_20220308-37579dc6.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_large.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=1e-4))
