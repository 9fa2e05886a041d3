# Mask R-CNN + FPN, Twins-SVT-B, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py).
# Source: detection/configs/mask_rcnn_alt_gvt_b_fpn_3x_coco_swin_setting.py.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='base',
        drop_path_rate=0.2,
        # No direct link: download alt_gvt_base.pth by hand from the authors' Google Drive,
        # https://drive.google.com/file/d/1s83To8xgDWY6Ad8VBP3Nx9gqY709rrGu/view (Meituan-AutoML/Twins README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_base.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
