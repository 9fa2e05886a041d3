# UperNet with TransNeXt-Tiny, ADE20K 512x512, 160k iterations, single-scale test
# (authors: 51.1 mIoU, 59M params). Recipe of segmentation/upernet/configs/
# upernet_transnext_tiny_512x512_160k_ade20k_ss.py: AdamW 6e-5, wd 0.05, no decay on the attention's
# tables and on norms, poly schedule with 1500 warm-up iterations, 2 images x 8 GPUs.
_base_ = ['../_base_/upernet_160k_ade20k.py']

pretrained = 'https://huggingface.co/DaiShiResearch/transnext-tiny-224-1k/resolve/main/transnext_tiny_224_1k.pth'
crop_size = (512, 512)
model = dict(
    backbone=dict(
        type='TransNeXt',
        arch='tiny',
        drop_path_rate=0.4,  # hard-coded for UperNet in the authors' code
        pos_bias_mode='interpolate',
        img_size=512,  # bias generated for 512x512 crops and resized (their single-scale setting)
        pretrain_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[72, 144, 288, 576]),
    auxiliary_head=dict(in_channels=288),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'query_embedding': dict(decay_mult=0.0),
        'relative_pos_bias_local': dict(decay_mult=0.0),
        'cpb': dict(decay_mult=0.0),
        'temperature': dict(decay_mult=0.0),
        'norm': dict(decay_mult=0.0),
    }))
