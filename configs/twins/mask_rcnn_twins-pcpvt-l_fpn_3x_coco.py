# Mask R-CNN + FPN, Twins-PCPVT-L, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py). The authors released no PCPVT-L 3x config.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,
        # No direct link: download pcpvt_large.pth by hand from the authors' Google Drive,
        # https://drive.google.com/file/d/17xZXOWEcSGs0quBmMEkBYCxjPRYH-L45/view (Meituan-AutoML/Twins README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_large.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
