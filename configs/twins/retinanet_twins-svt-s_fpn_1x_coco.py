# RetinaNet + FPN, Twins-SVT-S, COCO 1x: the authors' "PVT setting"
# (detection/configs/retinanet_alt_gvt_s_fpn_1x_coco_pvt_setting.py):
# AdamW lr 1e-4, weight decay 1e-4, default betas, no paramwise rules; 500-iter linear warm-up, steps at
# epochs 8 and 11; 2 images x 8 GPUs; single scale 1333x800; FPN from stride 8 with P6/P7 on the input.
# Drop path 0.2: the value the authors' dense code hard-codes.
# Published: no box AP and no weights in the authors' repository (their paper's RetinaNet table only).
_base_ = ['../_base_/retinanet_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='small',
        drop_path_rate=0.2,
        # The authors publish alt_gvt_small.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/131SVOphM_-SaBytf4kWjo3ony5hpOt4S/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-small'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_small_20220308-7e1c3695.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_small.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
