# Mask R-CNN + FPN, Twins-SVT-L, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py).
# Source: detection/configs/mask_rcnn_alt_gvt_l_fpn_3x_coco_swin_setting.py.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='large',
        drop_path_rate=0.2,
        # No direct link: download alt_gvt_large.pth by hand from the authors' Google Drive,
        # https://drive.google.com/file/d/1um39wxIaicmOquP2fr_SiZdxNCUou8w-/view (Meituan-AutoML/Twins README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_large.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
