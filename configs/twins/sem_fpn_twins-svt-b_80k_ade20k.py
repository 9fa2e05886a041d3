# Semantic FPN, Twins-SVT-B, ADE20K 512x512, 80k iterations: the authors' recipe
# (segmentation/configs/fpn_alt_gvt_b_512x512_80k_ade20k.py):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 1e-6), no warm-up;
# FPN 256 channels, FPNHead 128 channels; 4 images x 8 GPUs; whole-image test.
# Drop path 0.2: the value their segmentation backbone class hard-codes.
# Published: the authors give no Semantic FPN number or weights; OpenMMLab's re-run of this recipe with
# mmseg's port of Twins: 46.77 mIoU (47.47 ms+flip), weights (a direct download; mmseg 0.x keys, which
# tools/test.py and load_from convert):
#   https://download.openmmlab.com/mmsegmentation/v0.5/twins/twins_svt-b_fpn_fpnhead_8x4_512x512_80k_ade20k/twins_svt-b_fpn_fpnhead_8x4_512x512_80k_ade20k_20211201_113849-88b2907c.pth
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='base',
        drop_path_rate=0.2,
        # The authors publish alt_gvt_base.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1s83To8xgDWY6Ad8VBP3Nx9gqY709rrGu/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-base'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_base_20220308-1b7eb711.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_base.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=80000, by_epoch=False)]
