# UperNet, Twins-SVT-L, ADE20K 512x512, 160k iterations: the authors' recipe
# (segmentation/configs/upernet_alt_gvt_l_512x512_160k_ade20k_swin_setting.py):
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 with none on 'pos_block' and 'norm' parameters;
# poly (power 1.0, min lr 0) after a 1500-iter linear warm-up from ratio 1e-6; UperNet channels 512,
# auxiliary FCN head on stage 3; 2 images x 8 GPUs.
# Drop path 0.3: the value their segmentation backbone class hard-codes for SVT-L.
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='TwinsSVT',
        arch='large',
        drop_path_rate=0.3,
        # The authors publish alt_gvt_large.pth on Google Drive only (Meituan-AutoML/Twins README):
        # https://drive.google.com/file/d/1um39wxIaicmOquP2fr_SiZdxNCUou8w-/view (download by hand).
        # The same weights as a direct download, in mmseg's key layout (loads as is; 'mmvit://twins-svt-large'):
        # https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/alt_gvt_large_20220308-fb5936f3.pth
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/alt_gvt_large.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0)}))
