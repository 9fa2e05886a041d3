# RetinaNet + FPN, Twins-SVT-B, COCO 1x: the authors' "PVT setting"
# (detection/configs/retinanet_alt_gvt_b_fpn_1x_coco_pvt_setting.py):
# AdamW lr 1e-4, weight decay 1e-4, default betas, no paramwise rules; 500-iter linear warm-up, steps at
# epochs 8 and 11; 2 images x 8 GPUs; single scale 1333x800; FPN from stride 8 with P6/P7 on the input.
# Drop path 0.2: the value the authors' dense code hard-codes.
# Published: no box AP and no weights in the authors' repository (their paper's RetinaNet table only).
_base_ = ['../_base_/retinanet_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='base',
        drop_path_rate=0.2,
        # The authors publish alt_gvt_base.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1s83To8xgDWY6Ad8VBP3Nx9gqY709rrGu/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-base'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_base_20220308-1b7eb711.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_base.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
