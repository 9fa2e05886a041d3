# DINO 4-scale, Twins-PCPVT-L, COCO 12 epochs (mmdet's recipe: AdamW lr 1e-4, weight decay 1e-4, backbone
# lr x0.1, grad clip 0.1; steps at epoch 11). The authors published no DINO result; this config is ours.
# The backbone returns strides 8/16/32; ChannelMapper adds the 4th level.
_base_ = ['../_base_/dino_4scale_12e_coco.py']
model = dict(
    backbone=dict(
        type='TwinsPCPVT',
        arch='large',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        # The authors publish pcpvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/17xZXOWEcSGs0quBmMEkBYCxjPRYH-L45/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_large_20220308-37579dc6.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_large.pth')),
    neck=dict(in_channels=[128, 320, 512]))
