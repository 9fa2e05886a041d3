# Mask R-CNN + FPN, Twins-SVT-L, COCO 1x: the authors' "PVT setting"
# (detection/configs/mask_rcnn_alt_gvt_l_fpn_1x_coco_pvt_setting.py):
# AdamW lr 2e-4, weight decay 1e-4, default betas, no paramwise rules; 500-iter linear warm-up, steps at
# epochs 8 and 11; 2 images x 8 GPUs; single scale 1333x800. Drop path 0.2 is the value the authors'
# dense code hard-codes. init_cfg takes their ImageNet checkpoint as released (no offline step).
_base_ = ['../_base_/mask_rcnn_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='large',
        drop_path_rate=0.2,
        # The authors publish alt_gvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1um39wxIaicmOquP2fr_SiZdxNCUou8w-/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_large_20220308-fb5936f3.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_large.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=1e-4))
