# UperNet, Twins-PCPVT-S, ADE20K 512x512, 160k iterations: the authors' recipe
# (segmentation/configs/upernet_pcpvt_s_512x512_160k_ade20k_swin_setting.py):
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01 with none on 'pos_block' and 'norm' parameters;
# poly (power 1.0, min lr 0) after a 1500-iter linear warm-up from ratio 1e-6; UperNet channels 512,
# auxiliary FCN head on stage 3; 4 images x 8 GPUs (their PCPVT-S config keeps mmseg's 4 per GPU).
# Drop path 0.2: the value their segmentation backbone class hard-codes.
_base_ = ['../_base_/upernet_160k_ade20k.py']
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
    decode_head=dict(in_channels=[64, 128, 320, 512]),
    auxiliary_head=dict(in_channels=320))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0), 'norm': dict(decay_mult=0.0)}))
train_dataloader = dict(batch_size=4)
