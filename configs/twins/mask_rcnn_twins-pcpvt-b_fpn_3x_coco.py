# Mask R-CNN + FPN, Twins-PCPVT-B, COCO 3x: the authors' "Swin setting", the same for every variant
# (see mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py).
# Source: detection/configs/mask_rcnn_pcpvt_b_fpn_3x_coco_swin_setting.py.
_base_ = ['./mask_rcnn_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        # The authors publish pcpvt_base.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1BsD3ZRivvPsHoZB1AX-tbirFLtCln8ky/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-base'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_base_20220308-0621964c.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_base.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
