# UperNet, GC ViT-S backbone, ADE20K 512x512, 160k iterations. The authors released no segmentation
# code or config; this is mmseg's Swin recipe (AdamW lr 6e-5, weight decay 0.01, none on relative-position
# tables and norms; poly schedule after a 1500-iter warm-up; 2 images x 8 GPUs), window 24 as in their
# detection code. drop_path_rate 0.3 (ours: the authors published S/B results but no S/B config).
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='small',
        window_size=24,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_small.pth.tar')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0)}))
