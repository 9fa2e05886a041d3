# Mask R-CNN + FPN, Twins-PCPVT-B, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py).
# Source: detection/configs/mask_rcnn_pcpvt_b_fpn_3x_coco_swin_setting.py.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        # No direct link: download pcpvt_base.pth by hand from the authors' Google Drive,
        # https://drive.google.com/file/d/1BsD3ZRivvPsHoZB1AX-tbirFLtCln8ky/view (Meituan-AutoML/Twins README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_base.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
