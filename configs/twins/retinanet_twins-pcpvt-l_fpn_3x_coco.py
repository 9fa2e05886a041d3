# RetinaNet + FPN, Twins-PCPVT-L, COCO 3x: the authors' "Swin setting", the same for every variant
# (see retinanet_twins-pcpvt-s_fpn_3x_coco.py).
# The authors released no PCPVT-L 3x RetinaNet config; this one applies their recipe to PCPVT-L.
# Published: no box AP and no weights in the authors' repository (their paper's tables only).
_base_ = ['./retinanet_twins-pcpvt-s_fpn_3x_coco.py']
model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.2,
        # The authors publish pcpvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/17xZXOWEcSGs0quBmMEkBYCxjPRYH-L45/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_large_20220308-37579dc6.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_large.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
