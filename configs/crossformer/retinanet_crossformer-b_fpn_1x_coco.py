# RetinaNet + FPN, CrossFormer-B backbone, COCO 1x: the authors' recipe
# (detection/configs/crossformer/retinanet_crossformer_b_fpn_1x_coco.py):
# AdamW lr 1e-4, weight decay 1e-4, no paramwise rules; 500-iter linear warm-up, steps at epochs 8
# and 11; 2 images x 8 GPUs; 1333x800; FPN from stride 8 with P6/P7 on the input. Groups G=7,
# intervals (8, 4, 2, 1) as their dense configs.
# Published: 46.2 box AP (cheerss/CrossFormer READMEs). Weights (whole model,
# mmdet 2.x keys; no direct link, download by hand): https://drive.google.com/file/d/1TOuLLf_S4Ixo6COvaHQAocACR4NKKnGz/view
_base_ = ['../_base_/retinanet_fpn_1x_coco.py']
model = dict(
    backbone=dict(
        type='CrossFormer',
        arch='base',
        drop_path_rate=0.3,
        # No direct link: download by hand from the authors' Google Drive (or Baidu Cloud),
        # https://drive.google.com/file/d/1bK8biVCi17nz_nkt7rBfio_kywUpllSU/view (cheerss/CrossFormer README).
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/crossformer-b.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
