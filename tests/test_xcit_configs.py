"""XCiT configs: every config builds its whole model (parameter count pinned); one loss step and one
predict step on a small input run for a covering subset by default and for every config with
``XCIT_ALL_CONFIG_STEPS=1`` (about 10 s per config on a loaded 2-core CPU)."""
import glob
import os

import pytest
from config_checks import (ROOT, build_model, build_on_meta, count_params, load_config, loss_and_predict,
                           metafile_entry)

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', 'xcit', '*.py')))
# Each model type (Mask R-CNN 1x and 3x build the same model) at both patch sizes: the three defaults
# (S12/16) and T12/8. The other widths and depths are checked by the backbone tests (test_xcit.py).
STEPPED = {
    'configs/xcit/mask_rcnn_coco.py', 'configs/xcit/dino_coco.py', 'configs/xcit/upernet_ade20k.py',
    'configs/xcit/mask_rcnn_xcit-tiny-12-p8_fpn_3x_coco.py',
    'configs/xcit/dino-4scale_xcit-tiny-12-p8_12e_coco.py', 'configs/xcit/upernet_xcit-tiny-12-p8_160k_ade20k.py',
    'configs/xcit/sem_fpn_xcit-tiny-12-p16_80k_ade20k.py',
}
ALL_STEPS = '1' in (os.environ.get('XCIT_ALL_CONFIG_STEPS'), os.environ.get('MMVIT_ALL_CONFIG_STEPS'))
DIMS = {'tiny': 192, 'small': 384, 'medium': 512}
# Whole-model parameter counts of our builds (the authors publish none for detectors/segmentors).
WHOLE_MODEL_PARAMS = {
    'configs/xcit/mask_rcnn_coco.py': 44_386_560,
    'configs/xcit/dino_coco.py': 42_644_828,
    'configs/xcit/upernet_ade20k.py': 54_199_100,
}


def test_config_set():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {'mask_rcnn_coco.py', 'dino_coco.py', 'upernet_ade20k.py'} <= names
    for arch in ('tiny-12', 'small-12', 'small-24', 'medium-24'):
        for patch in ('p16', 'p8'):
            for name in (f'mask_rcnn_xcit-{arch}-{patch}_fpn_3x_coco.py', f'mask_rcnn_xcit-{arch}-{patch}_fpn_1x_coco.py',
                         f'dino-4scale_xcit-{arch}-{patch}_12e_coco.py', f'upernet_xcit-{arch}-{patch}_160k_ade20k.py',
                         f'sem_fpn_xcit-{arch}-{patch}_80k_ade20k.py'):
                assert name in names, name
    assert STEPPED <= set(CONFIGS)


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    assert backbone.type == 'XCiT' and backbone.norm_cfg.type == 'SyncBN'
    assert cfg.custom_imports['imports'] == ['mmvit_backbones']
    assert backbone.init_cfg.checkpoint.endswith(backbone.arch.replace('-', '_') + '_384_dist.pth')
    model = build_on_meta(cfg)
    c = DIMS[backbone.arch.split('-')[0]]
    assert model.backbone.out_channels == (c, ) * len(model.backbone.out_indices)
    if path in WHOLE_MODEL_PARAMS:
        assert count_params(model) == WHOLE_MODEL_PARAMS[path]
    if cfg.model.get('decode_head', {}).get('type') == 'FPNHead':  # Semantic FPN: the authors' sem_fpn recipe
        assert cfg.model.neck.in_channels == [c] * 4 and cfg.model.neck.out_channels == c
        assert cfg.model.decode_head.in_channels == [c] * 4 and cfg.model.decode_head.channels == 128
        assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (6e-5, 0.01)
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys == dict(norm=dict(decay_mult=0.0))
        assert [(s.type, s.end) for s in cfg.param_scheduler] == [('LinearLR', 1500), ('PolyLR', 80000)]
        assert cfg.param_scheduler[1].power == 1.0 and cfg.train_dataloader.batch_size == 2
        assert backbone.drop_path_rate == {'tiny-12': 0.0, 'small-12': 0.05, 'small-24': 0.1,
                                           'medium-24': 0.2}[backbone.arch.rsplit('-', 1)[0]]
        assert f'{count_params(model) / 1e6:.2f}M' == metafile_entry(path)['Metadata']['Parameters']


@pytest.mark.parametrize('path', [p for p in CONFIGS if ALL_STEPS or p in STEPPED])
def test_config_loss_and_predict(path):
    cfg = load_config(path)
    size = (64, 96)
    if cfg.model.get('data_preprocessor', {}).get('size'):
        cfg.model.data_preprocessor.size = size  # mmseg pads to the 512x512 crop otherwise
    if cfg.model.type == 'DINO':
        # DINO keeps its 900 top-scoring encoder tokens as queries, so it needs >= 900 tokens: the default
        # config runs at 224x224 (1045 tokens at strides 8-64); the others keep 100 queries at 64x96.
        if os.path.basename(path) == 'dino_coco.py':
            size = (224, 224)
        else:
            cfg.model.num_queries = 100
    losses, preds = loss_and_predict(cfg, build_model(cfg), size)
    assert losses and preds
