"""Every Twins config builds its full model and runs one loss and one predict step; recipes and param counts."""
import glob
import os
import re

import pytest
from config_checks import (ROOT, build_model, build_on_meta, count_params, load_config, loss_and_predict,
                           metafile_entry)

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, 'configs', 'twins', '*.py')))
VARIANTS = {  # short name: (type, arch, channels)
    'pcpvt-s': ('TwinsPCPVT', 'small', [64, 128, 320, 512]),
    'pcpvt-b': ('TwinsPCPVT', 'base', [64, 128, 320, 512]),
    'pcpvt-l': ('TwinsPCPVT', 'large', [64, 128, 320, 512]),
    'svt-s': ('TwinsSVT', 'small', [64, 128, 256, 512]),
    'svt-b': ('TwinsSVT', 'base', [96, 192, 384, 768]),
    'svt-l': ('TwinsSVT', 'large', [128, 256, 512, 1024]),
}
# Published UperNet whole-model parameter counts (README.md of the authors, M).
PUBLISHED_UPERNET = {'pcpvt-s': 54.6, 'pcpvt-b': 74.3, 'pcpvt-l': 91.5, 'svt-s': 54.4, 'svt-b': 88.5, 'svt-l': 133}


def test_every_variant_has_every_config():
    names = {os.path.basename(p) for p in CONFIGS}
    for short in VARIANTS:
        for name in (f'mask_rcnn_twins-{short}_fpn_1x_coco.py', f'mask_rcnn_twins-{short}_fpn_3x_coco.py',
                     f'dino-4scale_twins-{short}_12e_coco.py', f'upernet_twins-{short}_160k_ade20k.py',
                     f'retinanet_twins-{short}_fpn_1x_coco.py', f'retinanet_twins-{short}_fpn_3x_coco.py',
                     f'sem_fpn_twins-{short}_80k_ade20k.py'):
            assert name in names
    assert {'mask_rcnn_coco.py', 'dino_coco.py', 'upernet_ade20k.py'} <= names
    assert len(CONFIGS) == 45


# Configs whose `model` equals another config's (same recipe for the network; only data, optimizer or
# schedule differ): their loss/predict step is the one of the config they share the model with.
SAME_MODEL = {f'configs/twins/mask_rcnn_twins-{s}_fpn_3x_coco.py': f'configs/twins/mask_rcnn_twins-{s}_fpn_1x_coco.py'
              for s in VARIANTS}
SAME_MODEL.update({f'configs/twins/retinanet_twins-{s}_fpn_3x_coco.py':
                   f'configs/twins/retinanet_twins-{s}_fpn_1x_coco.py' for s in VARIANTS})
SAME_MODEL.update({
    'configs/twins/mask_rcnn_coco.py': 'configs/twins/mask_rcnn_twins-pcpvt-s_fpn_1x_coco.py',
    'configs/twins/dino_coco.py': 'configs/twins/dino-4scale_twins-pcpvt-s_12e_coco.py',
    'configs/twins/upernet_ade20k.py': 'configs/twins/upernet_twins-pcpvt-s_160k_ade20k.py',
})


@pytest.mark.parametrize('path', sorted(SAME_MODEL))
def test_config_shares_model(path):
    assert load_config(path).model.to_dict() == load_config(SAME_MODEL[path]).model.to_dict()


# RetinaNet and Semantic FPN: one loss/predict step per head (PCPVT and SVT); every config of these heads
# is built on the meta device and counted in test_head_configs (the step adds nothing per variant but time).
HEAD_STEPPED = {'configs/twins/retinanet_twins-pcpvt-s_fpn_1x_coco.py',
                'configs/twins/sem_fpn_twins-svt-s_80k_ade20k.py'}
HEADS = [p for p in CONFIGS if os.path.basename(p).startswith(('retinanet_', 'sem_fpn_')) and p not in SAME_MODEL]


@pytest.mark.parametrize('path', [p for p in CONFIGS if p not in SAME_MODEL and (p not in HEADS or p in HEAD_STEPPED)])
def test_config_builds_and_runs(path):
    cfg = load_config(path)
    backbone = cfg.model.backbone
    assert backbone.type in ('TwinsPCPVT', 'TwinsSVT')
    assert backbone.init_cfg.type == 'Pretrained'
    assert 'fp16' not in cfg
    if backbone.arch in ('base', 'large'):
        # full-size models are built and counted in test_upernet_param_counts; a depth-reduced copy keeps
        # this test fast
        backbone.arch = _depth_reduced(backbone.type, backbone.arch)
    if cfg.get('default_scope') == 'mmseg':  # the 512x512 crop padding would make this a full-size step
        cfg.model.data_preprocessor.size = (64, 96)
    if cfg.model.type == 'MaskRCNN':  # 1000 proposals through the 12544x1024 box FC dominate a 64x96 step
        cfg.model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        cfg.model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    model = build_model(_small_dino(cfg))
    if cfg.model.type == 'DINO':
        model.init_weights()  # DINO's level_embed is torch.empty until init_weights (random NaN losses otherwise)
    losses, _ = loss_and_predict(cfg, model, size=(64, 96))
    assert losses


def _small_dino(cfg):
    if cfg.model.type == 'DINO':  # top-k over encoder tokens needs num_queries <= tokens of a 64x96 image
        cfg.model.num_queries = 64
    return cfg


def _depth_reduced(type_name, arch):
    from mmvit_backbones.models.backbones.twins import TwinsPCPVT, TwinsSVT
    settings = dict((TwinsPCPVT if type_name == 'TwinsPCPVT' else TwinsSVT).arch_zoo[arch])
    settings['depths'] = [2, 2, 2, 2]
    return settings


@pytest.mark.parametrize('short', list(VARIANTS))
def test_recipes(short):
    type_name, arch, dims = VARIANTS[short]
    cfg = load_config(f'configs/twins/mask_rcnn_twins-{short}_fpn_1x_coco.py')
    assert (cfg.model.backbone.type, cfg.model.backbone.arch) == (type_name, arch)
    assert cfg.model.neck.in_channels == dims
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'paramwise_cfg' not in cfg.optim_wrapper
    assert (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr,
            cfg.optim_wrapper.optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
    assert cfg.train_cfg.max_epochs == 12

    cfg = load_config(f'configs/twins/mask_rcnn_twins-{short}_fpn_3x_coco.py')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 512.0
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (1e-4, 0.05)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'pos_block': {'decay_mult': 0.0},
                                                           'norm': {'decay_mult': 0.0}}
    assert cfg.train_cfg.max_epochs == 36 and cfg.param_scheduler[1].milestones == [27, 33]
    assert cfg.param_scheduler[0].end == 500

    cfg = load_config(f'configs/twins/dino-4scale_twins-{short}_12e_coco.py')
    assert tuple(cfg.model.backbone.out_indices) == (1, 2, 3) and cfg.model.neck.in_channels == dims[1:]

    cfg = load_config(f'configs/twins/upernet_twins-{short}_160k_ade20k.py')
    assert cfg.model.decode_head.in_channels == dims and cfg.model.auxiliary_head.in_channels == dims[2]
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (6e-5, 0.01)
    assert set(cfg.optim_wrapper.paramwise_cfg.custom_keys) == {'pos_block', 'norm'}
    assert cfg.train_dataloader.batch_size == (4 if short == 'pcpvt-s' else 2)
    assert cfg.model.backbone.drop_path_rate == (0.3 if short == 'svt-l' else 0.2)


def test_no_decay_keys_match_parameters():
    """'pos_block' and 'norm' select exactly the PEG convs and every LayerNorm of the backbone."""
    from mmengine.optim import build_optim_wrapper
    cfg = load_config('configs/twins/upernet_twins-svt-s_160k_ade20k.py')
    cfg.model.backbone.arch = _depth_reduced('TwinsSVT', 'small')
    model = build_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    no_decay = {id(p) for group in wrapper.optimizer.param_groups if group['weight_decay'] == 0
                for p in group['params']}
    for name, param in model.backbone.named_parameters():
        expect = 'pos_block' in name or 'norm' in name
        assert (id(param) in no_decay) == expect, name


@pytest.mark.parametrize('short', list(VARIANTS))
def test_upernet_param_counts(short):
    """Whole-model counts vs the published table. The authors' dense backbone still holds the unused ImageNet
    classifier (Linear(C4, 1000)) and final norm, which their counts include and our backbone drops."""
    model = build_model(load_config(f'configs/twins/upernet_twins-{short}_160k_ade20k.py'))
    ours = count_params(model)
    dead_head = model.backbone.embed_dims[-1] * 1000 + 1000 + 2 * model.backbone.embed_dims[-1]
    published = PUBLISHED_UPERNET[short] * 1e6
    if short == 'svt-l':  # published as "133" (truncated): 133.8M with the dead head, 132.8M without
        assert int((ours + dead_head) / 1e6) == 133 and abs(ours - published) / published < 0.005
    else:
        assert abs(ours + dead_head - published) / published < 0.001


@pytest.mark.parametrize('path', HEADS)
def test_head_configs(path):
    """RetinaNet (1x "PVT setting"; 3x checked equal above) and Semantic FPN 80k: the authors' recipes, the
    backbone's channels into the neck, and the whole-model size in the metafile."""
    short = re.search(r'_twins-(\w+-\w)_', path).group(1)
    type_name, arch, dims = VARIANTS[short]
    cfg = load_config(path)
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.init_cfg.type) == (type_name, arch, 'Pretrained')
    assert cfg.model.neck.in_channels == dims and cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'paramwise_cfg' not in cfg.optim_wrapper
    assert (cfg.optim_wrapper.optimizer.type, cfg.optim_wrapper.optimizer.lr,
            cfg.optim_wrapper.optimizer.weight_decay) == ('AdamW', 1e-4, 1e-4)
    if cfg.model.type == 'RetinaNet':
        assert (cfg.model.neck.start_level, cfg.model.neck.add_extra_convs) == (1, 'on_input')
        assert cfg.train_cfg.max_epochs == 12 and cfg.param_scheduler[1].milestones == [8, 11]
        assert backbone.drop_path_rate == 0.2 and cfg.auto_scale_lr.base_batch_size == 16
        three = load_config(path.replace('_1x_', '_3x_'))
        assert (three.optim_wrapper.optimizer.lr, three.optim_wrapper.optimizer.weight_decay) == (1e-4, 0.05)
        assert set(three.optim_wrapper.paramwise_cfg.custom_keys) == {'pos_block', 'norm'}
        assert three.train_cfg.max_epochs == 36 and three.param_scheduler[1].milestones == [27, 33]
        assert any(t.type == 'RandomChoice' for t in three.train_dataloader.dataset.pipeline)
    else:
        assert cfg.model.decode_head.in_channels == [256] * 4 and cfg.model.decode_head.num_classes == 150
        assert cfg.param_scheduler == [dict(type='PolyLR', eta_min=1e-6, power=0.9, begin=0, end=80000,
                                            by_epoch=False)]
        assert cfg.train_dataloader.batch_size == 4 and cfg.auto_scale_lr.base_batch_size == 32
        assert backbone.drop_path_rate == (0.3 if short == 'svt-l' else 0.2)
        assert cfg.model.pretrained is None  # mmseg's FPN base names a ResNet checkpoint there
    assert f'{count_params(build_on_meta(cfg)) / 1e6:.2f}M' == metafile_entry(path)['Metadata']['Parameters']
