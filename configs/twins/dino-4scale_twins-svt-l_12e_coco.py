# DINO 4-scale, Twins-SVT-L, COCO 12 epochs (mmdet's recipe: AdamW lr 1e-4, weight decay 1e-4, backbone
# lr x0.1, grad clip 0.1; steps at epoch 11). The authors published no DINO result; this config is ours.
# The backbone returns strides 8/16/32; ChannelMapper adds the 4th level.
_base_ = ['../_base_/dino_4scale_12e_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='large',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        # The authors publish alt_gvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1um39wxIaicmOquP2fr_SiZdxNCUou8w-/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_large_20220308-fb5936f3.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_large.pth')),
    neck=dict(in_channels=[256, 512, 1024]))
