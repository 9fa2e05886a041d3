# RetinaNet + FPN, Twins-PCPVT-S, COCO 3x with DETR-style multi-scale + crop training: the authors'
# "Swin setting" (detection/configs/retinanet_pcpvt_s_fpn_3x_ms_coco.py): AdamW lr 1e-4, betas
# (0.9, 0.999), weight decay 0.05 with none on 'pos_block' (PEG) and 'norm' parameters; 500-iter linear
# warm-up, steps at epochs 27 and 33; 2 images x 8 GPUs; fp32 (their RetinaNet 3x sets no fp16).
# Published: no box AP and no weights in the authors' repository (their paper's tables only).
_base_ = ['../_base_/retinanet_fpn_3x_ms_coco.py']
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
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0)}))
