# RetinaNet + FPN, CrossFormer++-S backbone, COCO 1x: the authors' recipe
# (detection/configs/crossformer_pp/retinanet_crossformerpp_s_fpn_1x_coco.py):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; 500-iter linear warm-up, steps at epochs 8
# and 11; 2 images x 8 GPUs; 1333x800; FPN from stride 8 with P6/P7 on the input. Groups G=7,
# intervals (8, 4, 2, 1) as their dense configs.
# Published: 45.1 box AP (cheerss/CrossFormer README); no released weights
# (README: "to be uploaded").
_base_ = ['../_base_/retinanet_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='pp-small',
        drop_path_rate=0.2,
        # No direct link: download by hand from the authors' Baidu Cloud (no Google Drive copy),
        # https://pan.baidu.com/s/1smc_kRoogd0Ig5vfqwuGTA?pwd=crsf (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-pp-s.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
