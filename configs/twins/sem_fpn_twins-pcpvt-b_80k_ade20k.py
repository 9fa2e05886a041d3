# Semantic FPN, Twins-PCPVT-B, ADE20K 512x512, 80k iterations: the authors' recipe
# (segmentation/configs/fpn_pcpvt_b_512x512_80k_ade20k.py):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 1e-6), no warm-up;
# FPN 256 channels, FPNHead 128 channels; 4 images x 8 GPUs; whole-image test.
# Drop path 0.2: the value their segmentation backbone class hard-codes.
# Published: the authors give no Semantic FPN number or weights; OpenMMLab's re-run of this recipe with
# mmseg's port of Twins: 45.66 mIoU (46.48 ms+flip), weights (a direct download; mmseg 0.x keys, which
# tools/test.py and load_from convert):
#   https://download.openmmlab.com/mmsegmentation/v0.5/twins/twins_pcpvt-b_fpn_fpnhead_8x4_512x512_80k_ade20k/twins_pcpvt-b_fpn_fpnhead_8x4_512x512_80k_ade20k_20211130_141019-d396db72.pth
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='TwinsPCPVT',
        arch='base',
        drop_path_rate=0.2,
        # The authors publish pcpvt_base.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1BsD3ZRivvPsHoZB1AX-tbirFLtCln8ky/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-base'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_base_20220308-0621964c.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_base.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=80000, by_epoch=False)]
