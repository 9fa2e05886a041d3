# UperNet, GC ViT-B backbone, ADE20K 512x512, 160k iterations. The authors released no segmentation
# code or config; this is mmseg's Swin recipe (AdamW lr 6e-5, weight decay 0.01, none on relative-position
# tables and norms; poly schedule after a 1500-iter warm-up; 2 images x 8 GPUs), window 24 as in their
# detection code. drop_path_rate 0.3 (ours: the authors published S/B results but no S/B config).
_base_ = ['../_base_/upernet_160k_ade20k.py']
model = dict(
    backbone=dict(
        type='GCViT',
        arch='base',
        window_size=24,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained',
                      checkpoint='https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_1k_base.pth.tar')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'relative_position_bias_table': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0)}))
