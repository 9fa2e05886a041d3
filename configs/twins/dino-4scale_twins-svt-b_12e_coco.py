# DINO 4-scale, Twins-SVT-B, COCO 12 epochs (mmdet's recipe: AdamW lr 1e-4, weight decay 1e-4, backbone
# lr x0.1, grad clip 0.1; steps at epoch 11). The authors published no DINO result; this config is ours.
# The backbone returns strides 8/16/32; ChannelMapper adds the 4th level.
_base_ = ['../_base_/dino_4scale_12e_coco.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='base',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        # No direct link: download alt_gvt_base.pth by hand from the authors' Google Drive,
        # https://drive.google.com/file/d/1s83To8xgDWY6Ad8VBP3Nx9gqY709rrGu/view (Meituan-AutoML/Twins README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_base.pth')),
    neck=dict(in_channels=[192, 384, 768]))
