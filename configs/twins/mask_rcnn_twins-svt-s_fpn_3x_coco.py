# Mask R-CNN + FPN, Twins-SVT-S, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py).
# Source: detection/configs/mask_rcnn_alt_gvt_s_fpn_3x_coco_swin_setting.py.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
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
