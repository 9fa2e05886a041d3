"""Every TransNeXt config builds its full model and reproduces the published size, and runs a loss and a
predict step (reduced depth) on a small input."""
import glob
import os

import pytest
from config_checks import (ROOT, build_model, build_on_meta, count_params, load_config, loss_and_predict,
                           metafile_entry, shrink_heads_for_step)

# published whole-model sizes (millions) from the authors' README
PUBLISHED = {
    'dino-4scale_transnext-t_12e_coco.py': 47.8,
    'dino-5scale_transnext-t_12e_coco.py': 48.1,
    'dino-5scale_transnext-s_12e_coco.py': 69.6,
    'dino-5scale_transnext-b_12e_coco.py': 110.0,
    'mask-rcnn_transnext-t_fpn_1x_coco.py': 47.9,
    'mask-rcnn_transnext-s_fpn_1x_coco.py': 69.3,
    'mask-rcnn_transnext-b_fpn_1x_coco.py': 109.2,
    'upernet_transnext-t_160k_ade20k_ss.py': 59,
    'upernet_transnext-s_160k_ade20k_ss.py': 80,
    'upernet_transnext-b_160k_ade20k_ss.py': 121,
}
for variant in 'tsb':
    for setting in ('ms', 'ms-extrapolation'):
        PUBLISHED[f'upernet_transnext-{variant}_160k_ade20k_{setting}.py'] = \
            PUBLISHED[f'upernet_transnext-{variant}_160k_ade20k_ss.py']
PUBLISHED.update({'dino_coco.py': 47.8, 'mask_rcnn_coco.py': 47.9, 'upernet_ade20k.py': 59})
PUBLISHED.update({'mask2former_transnext-t_160k_ade20k.py': 47.5, 'mask2former_transnext-s_160k_ade20k.py': 69.0,
                  'mask2former_transnext-b_160k_ade20k.py': 109})
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, 'configs', 'transnext', '*.py')))


def test_every_config_is_listed():
    assert sorted(PUBLISHED) == CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_with_published_size(name):
    cfg = load_config(f'configs/transnext/{name}')
    millions = count_params(build_on_meta(cfg)) / 1e6
    published = PUBLISHED[name]
    # within 0.5%, or within the rounding of a size published as a whole number (UperNet "59M")
    tolerance = max(0.005 * published, 0.5 if float(published).is_integer() else 0.05)
    assert abs(millions - published) <= tolerance, f'{name}: {millions:.2f}M vs published {published}M'
    assert cfg.model.backbone.type == 'TransNeXt'


# Mask2Former -S/-B differ from -T in arch and drop path only (checked in test_mask2former_recipe): one step.
STEPPED = [n for n in CONFIGS if not n.startswith('mask2former_') or n == 'mask2former_transnext-t_160k_ade20k.py']


@pytest.mark.parametrize('name', STEPPED)
def test_config_loss_and_predict_step(name):
    """Every config runs one loss and one predict step. The full-size models are built and counted
    above (and their backbones run in test_transnext.py); here the backbone keeps the config's arch
    widths, heads, position-bias mode and img_size but one block per stage, so the step stays fast."""
    from mmvit_backbones.models.backbones.transnext import TransNeXt
    cfg = load_config(f'configs/transnext/{name}')
    backbone = cfg.model.backbone
    backbone.arch = dict(TransNeXt.arch_zoo[backbone.arch], depths=(1, 1, 1, 1))
    shrink_heads_for_step(cfg)
    losses, _ = loss_and_predict(cfg, build_model(cfg), size=(64, 96))
    assert losses


def test_headline_dino_recipe():
    """dino_coco.py: DINO 4-scale TransNeXt-T; backbone lr x0.1 on all four stages, AMP, batch 16."""
    cfg = load_config('configs/transnext/dino_coco.py')
    bb = cfg.model.backbone
    assert (bb.arch, tuple(bb.out_indices), bb.drop_path_rate, bb.img_size) == ('tiny', (1, 2, 3), 0.3, 800)
    assert cfg.model.neck.in_channels == [144, 288, 576] and cfg.model.num_feature_levels == 4
    ow = cfg.optim_wrapper
    assert ow.type == 'AmpOptimWrapper' and ow.accumulative_counts == 2 and cfg.train_dataloader.batch_size == 1
    assert ow.clip_grad.max_norm == 0.1 and ow.optimizer.weight_decay == 0.05
    keys = ow.paramwise_cfg.custom_keys
    for stage in (1, 2, 3, 4):  # the authors' comprehension stops at stage 3
        assert keys[f'backbone.norm{stage}'] == dict(lr_mult=0.1, decay_mult=0.0)
        assert keys[f'backbone.patch_embed{stage}.proj.weight'] == dict(lr_mult=0.1)


def test_dino_param_groups_cover_whole_backbone():
    """Built through mmengine's constructor, every backbone parameter gets lr x0.1, and no-decay
    parameters (norms, biases, attention tables) get no weight decay."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    cfg = load_config('configs/transnext/dino-5scale_transnext-s_12e_coco.py')
    model = build_model(cfg)
    ow = cfg.optim_wrapper.to_dict()
    ow['type'] = 'OptimWrapper'  # AmpOptimWrapper needs a GPU; the param groups are the same
    ow.pop('loss_scale')
    constructor = DefaultOptimWrapperConstructor(ow, ow.pop('paramwise_cfg'))
    groups = constructor(model).optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        for p in group['params']:
            name = names[id(p)]
            if not name.startswith('backbone.'):
                continue
            assert group['lr'] == pytest.approx(1e-5), name
            no_decay = (p.ndim == 1 or 'norm' in name or 'query_embedding' in name or 'cpb' in name
                        or 'temperature' in name or 'relative_pos_bias_local' in name)
            if no_decay and 'learnable' not in name:
                assert group['weight_decay'] == 0, name


@pytest.mark.parametrize('arch', ['t', 's', 'b'])
def test_mask2former_recipe(arch):
    """The authors' mmseg 1.0 Mask2Former configs: mmseg's R-50 recipe (AdamW 1e-4, wd 0.05, eps 1e-8, clip
    0.01, poly 0.9, batch 2 x 8) with backbone lr x0.1 and no decay on the query/level embeddings; mmdet's
    modules imported; the whole-model size in the metafile."""
    path = f'configs/transnext/mask2former_transnext-{arch}_160k_ade20k.py'
    cfg = load_config(path)
    bb = cfg.model.backbone
    assert (bb.arch, bb.drop_path_rate, bb.img_size, bb.pos_bias_mode) == (
        dict(t='tiny', s='small', b='base')[arch], dict(t=0.3, s=0.5, b=0.6)[arch], 512, 'interpolate')
    c = 96 if arch == 'b' else 72
    head = cfg.model.decode_head
    assert head.type == 'Mask2FormerHead' and head.in_channels == [c, 2 * c, 4 * c, 8 * c]
    assert set(cfg.custom_imports['imports']) == {'mmdet.models', 'mmvit_backbones'}
    ow = cfg.optim_wrapper
    optimizer = ow.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay, optimizer.eps) == ('AdamW', 1e-4, 0.05, 1e-8)
    assert ow.clip_grad.max_norm == 0.01 and cfg.train_dataloader.batch_size == 2
    keys = ow.paramwise_cfg.custom_keys
    for embed in ('query_embed', 'query_feat', 'level_embed'):
        assert keys[f'decode_head.{embed}'] == dict(lr_mult=1.0, decay_mult=0.0)
    assert keys['backbone.norm4'] == dict(lr_mult=0.1, decay_mult=0.0)
    assert cfg.param_scheduler[0].type == 'PolyLR' and cfg.train_cfg.max_iters == 160000
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert f'{count_params(build_on_meta(cfg)) / 1e6:.2f}M' == metafile_entry(path)['Metadata']['Parameters']
