# Semantic FPN, Twins-PCPVT-S, ADE20K 512x512, 80k iterations: the authors' recipe
# (segmentation/configs/fpn_pcpvt_s_512x512_80k_ade20k.py):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; poly (power 0.9, min lr 1e-6), no warm-up;
# FPN 256 channels, FPNHead 128 channels; 4 images x 8 GPUs; whole-image test.
# Drop path 0.2: the value their segmentation backbone class hard-codes.
# Published: the authors give no Semantic FPN number or weights; OpenMMLab's re-run of this recipe with
# mmseg's port of Twins: 43.26 mIoU (44.11 ms+flip), weights (a direct download; mmseg 0.x keys, which
# tools/test.py and load_from convert):
#   https://download.openmmlab.com/mmsegmentation/v0.5/twins/twins_pcpvt-s_fpn_fpnhead_8x4_512x512_80k_ade20k/twins_pcpvt-s_fpn_fpnhead_8x4_512x512_80k_ade20k_20211201_204132-41acd132.pth
_base_ = ['../_base_/sem_fpn_80k_ade20k.py']
model = dict(
    backbone=dict(
        type='TwinsPCPVT',
        arch='small',
        drop_path_rate=0.2,
        # The authors publish pcpvt_small.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1TWIx_8M-4y6UOKtbCgm1v-UVQ-_lYe6X/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-pcpvt-small'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_small_20220308-e638c41c.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/pcpvt_small.pth')),
    neck=dict(in_channels=[64, 128, 320, 512]))
param_scheduler = [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=80000, by_epoch=False)]
