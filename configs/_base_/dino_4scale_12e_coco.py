# DINO 4-scale, COCO, 12 epochs (mmdet's recipe: AdamW 1e-4, wd 1e-4, backbone lr x0.1, clip 0.1, step at 11).
# Backbone out_indices are the last three stages; ChannelMapper adds the 4th level.
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    './custom_imports.py',
]
model = dict(backbone=dict(_delete_=True))
auto_scale_lr = dict(enable=False, base_batch_size=16)
