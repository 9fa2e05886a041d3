"""The authors' whole detectors/segmentors (mmdet 2.x/3.x, mmseg 0.x/1.x layouts) through the runner's loading.

Synthetic checkpoints: a small detector/segmentor of ours is built, its backbone keys are renamed to the
authors' dense-backbone layout (``to_authors`` below, checked against the key lists of the authors'
ImageNet models in tests/fixtures/<family>/), and it is saved as their mmdet/mmseg wrote it
(``{'state_dict', 'meta': {'mmdet_version': ...}}``). Random tensors; shapes and names are what matters.
"""
import json
import os.path as osp
import re
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope, init_default_scope

from mmvit_backbones.checkpoint import CheckpointError, load_whole_model
from mmvit_backbones.engine import MMViTRunner
from mmvit_backbones.checkpoint.whole_model import HEAD_RENAMES, writer_of

FIXTURES = osp.join(osp.dirname(osp.abspath(__file__)), 'fixtures')

# Reduced archs (as in each family's own tests).
TINY = {
    'gcvit': dict(type='GCViT', arch=dict(embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), mlp_ratio=2)),
    'twins': dict(type='TwinsSVT', arch=dict(embed_dims=[8, 16, 24, 32], num_heads=[1, 2, 3, 4],
                                             mlp_ratios=[4, 4, 4, 4], depths=[2, 2, 2, 2], sr_ratios=[8, 4, 2, 1],
                                             window_sizes=[7, 7, 7, 7])),
    'crossformer': dict(type='CrossFormer', arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))),
    'xcit': dict(type='XCiT', arch=dict(embed_dims=32, depth=4, num_heads=2, patch_size=16,
                                        tap_blocks=(0, 1, 2, 3))),
    'transnext': dict(type='TransNeXt', arch=dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1),
                                                  num_heads=(1, 2, 3, 4))),
}


# ------------------------------------------------------------------ our keys -> the authors' dense layout
def _twins_to_authors(key: str) -> str:
    for pattern, repl in ((r'^stages\.(\d+)\.patch_embed\.', r'patch_embeds.\1.'),
                          (r'^stages\.(\d+)\.blocks\.(\d+)\.', r'blocks.\1.\2.'),
                          (r'^stages\.(\d+)\.pos_block\.proj\.', r'pos_block.\1.proj.0.'),
                          (r'^stages\.(\d+)\.norm\.', r'norm_list.\1.')):
        key, n = re.subn(pattern, repl, key)
        if n:
            break
    return key


def _xcit_to_authors(key: str) -> str:
    match = re.match(r'^patch_embed\.convs\.(\d+)\.(conv|bn)\.(.+)$', key)
    if match:
        return f'patch_embed.proj.{2 * int(match.group(1))}.{0 if match.group(2) == "conv" else 1}.{match.group(3)}'
    for ours, theirs in (('pos_embed.proj.', 'pos_embeder.token_projection.'), ('pyramid.levels.0.up1.', 'fpn1.0.'),
                         ('pyramid.levels.0.bn.', 'fpn1.1.'), ('pyramid.levels.0.up2.', 'fpn1.3.'),
                         ('pyramid.levels.1.up1.', 'fpn2.0.')):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def to_authors(family: str, backbone_state: dict) -> dict:
    """This package's backbone state dict in the authors' dense-backbone key layout."""
    rename = {'twins': _twins_to_authors, 'xcit': _xcit_to_authors}.get(family, lambda k: k)
    out = {rename(k): v for k, v in backbone_state.items() if k != 'global_query_split_code'}  # ours only
    if family == 'gcvit':  # their det backbone stores the index buffers (rebuilt by the converter)
        out['levels.0.blocks.0.attn.relative_position_index'] = torch.zeros(4, 4, dtype=torch.long)
    return out


# Authors' ImageNet keys a dense backbone does not take (classifier, rebuilt buffers) and dense-only additions.
NOT_DENSE = {
    'gcvit': r'^(head|norm)\.|relative_position_index$',
    'twins': r'^(head|norm)\.',
    'crossformer': r'^(head|norm)\.|attn\.biases$|relative_position_index$|attn_mask$',
    'xcit': r'^(head|norm|cls_token|cls_attn_blocks)\b',
    'transnext': r'^head\.|relative_pos_index$|relative_coords_table$|seq_length_scale$|padding_mask$',
}
DENSE_ONLY = {'gcvit': r'^norm\d\.', 'twins': r'^norm_list\.', 'crossformer': r'$^', 'xcit': r'^fpn[12]\.',
              'transnext': r'$^'}
FULL_SIZE = [('gcvit', 'GCViT', 'tiny', 'gcvit/official_keys.json', 'tiny'),
             ('twins', 'TwinsSVT', 'small', 'twins/official_imagenet_keys.json', 'alt_gvt_small'),
             ('twins', 'TwinsPCPVT', 'small', 'twins/official_imagenet_keys.json', 'pcpvt_small_v0'),
             ('crossformer', 'CrossFormer', 'pp-small', 'crossformer/imagenet_key_layouts.json', 'pp-small'),
             ('xcit', 'XCiT', 'tiny-12-p16', 'xcit/imagenet_keys.json', 'tiny-12-p16'),
             ('transnext', 'TransNeXt', 'micro', 'transnext/imagenet_layout.json', 'micro')]


@pytest.mark.parametrize('family,type_name,arch,fixture,entry', FULL_SIZE)
def test_to_authors_matches_their_key_layout(family, type_name, arch, fixture, entry):
    """``to_authors`` of a full-size model gives the authors' keys (ImageNet layout + dense-only additions)."""
    from mmengine.registry import MODELS
    with torch.device('meta'):
        model = MODELS.build(dict(type=type_name, arch=arch))
    theirs = set(json.load(open(osp.join(FIXTURES, fixture)))[entry])
    ours = set(to_authors(family, model.state_dict())) - {'levels.0.blocks.0.attn.relative_position_index'}
    extra = sorted(k for k in ours - theirs if not re.search(DENSE_ONLY[family], k) and
                   not k.endswith('num_batches_tracked'))
    lacking = sorted(k for k in theirs - ours if not re.search(NOT_DENSE[family], k))
    assert not extra and not lacking, (extra[:5], lacking[:5])


# ------------------------------------------------------------------------------ small whole models
def _mm_config(library: str, rel: str) -> Config:
    import importlib
    root = osp.dirname(importlib.import_module(library).__file__)
    return Config.fromfile(osp.join(root, '.mim', 'configs', rel))


def _channels(backbone_cfg: dict):
    from mmengine.registry import MODELS
    with torch.device('meta'):  # shapes only
        return list(MODELS.build(backbone_cfg).out_channels)


SEG_KINDS = ('upernet', 'sem_fpn', 'mask2former')


def build_whole(family: str, kind: str = 'mask_rcnn', backbone: dict = None, seed: int = 0):
    """A small Mask R-CNN / RetinaNet / DINO (mmdet) or UperNet / Semantic FPN / Mask2Former (mmseg) with a
    reduced backbone of ``family``: the library's own model config, only narrower and shallower."""
    backbone = dict(backbone or TINY[family])
    channels = _channels(backbone)
    if kind in SEG_KINDS:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        scope = 'mmseg'
        if kind == 'upernet':
            cfg = _mm_config('mmseg', '_base_/models/upernet_r50.py').model
            cfg.decode_head.update(in_channels=channels, channels=16, num_classes=4, norm_cfg=dict(type='BN'))
            cfg.auxiliary_head.update(in_channels=channels[2], channels=8, num_classes=4, norm_cfg=dict(type='BN'))
        elif kind == 'sem_fpn':
            cfg = _mm_config('mmseg', '_base_/models/fpn_r50.py').model
            cfg.neck.update(in_channels=channels, out_channels=16)
            cfg.decode_head.update(in_channels=[16] * 4, channels=8, num_classes=4, norm_cfg=dict(type='BN'))
        else:
            import mmdet.models  # noqa: F401  (mmseg's Mask2FormerHead is built from mmdet's parts)
            cfg = _mm_config('mmseg', 'mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py').model
            head = cfg.decode_head
            head.update(in_channels=channels, feat_channels=32, out_channels=32, num_classes=4, num_queries=8)
            head.loss_cls.class_weight = [1.0] * 4 + [0.1]
            head.pixel_decoder.encoder.update(num_layers=1)
            head.pixel_decoder.encoder.layer_cfg.self_attn_cfg.embed_dims = 32
            head.pixel_decoder.encoder.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
            head.pixel_decoder.positional_encoding.num_feats = 16
            head.positional_encoding.num_feats = 16
            head.transformer_decoder.update(num_layers=2)
            layer = head.transformer_decoder.layer_cfg
            layer.self_attn_cfg.embed_dims = layer.cross_attn_cfg.embed_dims = 32
            layer.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
        cfg.pop('pretrained', None)
        cfg.backbone = backbone
    else:
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        scope = 'mmdet'
        if kind == 'dino':
            cfg = _mm_config('mmdet', 'dino/dino-4scale_r50_8xb2-12e_coco.py').model
            cfg.backbone = backbone
            cfg.neck.update(in_channels=channels[1:], out_channels=32)
            cfg.encoder.update(num_layers=1)
            cfg.encoder.layer_cfg.self_attn_cfg.embed_dims = 32
            cfg.encoder.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
            cfg.decoder.update(num_layers=1)
            cfg.decoder.layer_cfg.self_attn_cfg.embed_dims = 32
            cfg.decoder.layer_cfg.cross_attn_cfg.embed_dims = 32
            cfg.decoder.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
            cfg.positional_encoding.num_feats = 16
            cfg.update(num_queries=16)
            cfg.bbox_head.num_classes = 3
        elif kind == 'retinanet':
            cfg = _mm_config('mmdet', '_base_/models/retinanet_r50_fpn.py').model
            cfg.backbone = backbone
            cfg.neck.update(in_channels=channels, out_channels=16)
            cfg.bbox_head.update(in_channels=16, feat_channels=16, stacked_convs=2, num_classes=3)
        else:
            cfg = _mm_config('mmdet', '_base_/models/mask-rcnn_r50_fpn.py').model
            cfg.backbone = backbone
            cfg.neck.update(in_channels=channels, out_channels=16)
            cfg.rpn_head.update(in_channels=16, feat_channels=16)
            roi = cfg.roi_head
            roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = 16
            roi.bbox_head.update(in_channels=16, fc_out_channels=32, num_classes=3)
            roi.mask_head.update(in_channels=16, conv_out_channels=8, num_classes=3)
    init_default_scope(scope)
    register_all_modules(init_default_scope=False)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg)
    with torch.no_grad():  # distinct values everywhere (a fresh build must really be overwritten)
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model


def authors_checkpoint(model, family: str, path: str, writer=('mmdet', '2.19.0')) -> str:
    """``model`` saved as the authors' mmdet/mmseg code writes it (their backbone key layout)."""
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    authors = {f'backbone.{k}': v for k, v in to_authors(family, backbone).items()}
    authors.update({k: v for k, v in state.items() if not k.startswith('backbone.')})
    torch.save({'state_dict': authors, 'meta': {f'{writer[0]}_version': writer[1], 'CLASSES': ('a', 'b', 'c'),
                                                'epoch': 36}}, path)
    return path


def _runner_load(model, path, allow_partial=False):
    """``MMViTRunner.load_checkpoint`` (what tools/test.py and load_from run) on a bare model."""
    fake = types.SimpleNamespace(model=model, allow_partial_load=allow_partial, call_hook=lambda *a, **k: None,
                                 logger=MMLogger.get_current_instance(), _has_loaded=False)
    return MMViTRunner.load_checkpoint(fake, path)


WHOLE = [('gcvit', 'mask_rcnn', ('mmdet', '2.19.0')), ('twins', 'mask_rcnn', ('mmdet', '2.8.0')),
         ('twins', 'upernet', ('mmseg', '0.20.2')), ('crossformer', 'mask_rcnn', ('mmdet', '2.26.0')),
         ('xcit', 'upernet', ('mmseg', '0.11.0')), ('transnext', 'dino', ('mmdet', '3.0.0')),
         # the other heads the authors released (writer versions: their READMEs / requirements)
         ('twins', 'retinanet', ('mmdet', '2.8.0')), ('twins', 'sem_fpn', ('mmseg', '0.12.0')),
         ('crossformer', 'retinanet', ('mmdet', '2.26.0')), ('crossformer', 'sem_fpn', ('mmseg', '0.29.1')),
         ('xcit', 'sem_fpn', ('mmseg', '0.11.0')), ('transnext', 'mask2former', ('mmseg', '1.0.0'))]


@pytest.mark.parametrize('family,kind,writer', WHOLE)
def test_authors_whole_model_loads_with_nothing_missing(tmp_path, family, kind, writer):
    source = build_whole(family, kind, seed=0)
    path = authors_checkpoint(source, family, str(tmp_path / f'{family}_{kind}.pth'), writer)
    target = build_whole(family, kind, seed=1)
    if kind in ('upernet', 'sem_fpn'):  # the plain function that tools/convert and users call
        report = load_whole_model(target, path)
        assert report['missing'] == [] and report['mismatched'] == []
    else:
        assert writer_of(_runner_load(target, path)) == writer
    expected = source.state_dict()
    for key, value in target.state_dict().items():
        torch.testing.assert_close(value, expected[key], msg=key)


def test_tta_model_loads_the_wrapped_models_checkpoint(tmp_path):
    """tools/test.py --tta wraps the model (SegTTAModel(module=...)); the checkpoint is the inner model's."""
    from mmseg.models import SegTTAModel
    source = build_whole('twins', 'upernet')
    path = authors_checkpoint(source, 'twins', str(tmp_path / 'seg.pth'), ('mmseg', '0.30.0'))
    tta = SegTTAModel(module=build_whole('twins', 'upernet', seed=1))
    _runner_load(tta, path)
    torch.testing.assert_close(tta.module.state_dict(), source.state_dict())


def test_other_family_whole_model_is_refused_naming_it(tmp_path):
    path = authors_checkpoint(build_whole('transnext', 'mask_rcnn'), 'transnext', str(tmp_path / 't.pth'))
    with pytest.raises(CheckpointError, match='not a gcvit checkpoint: it looks like a transnext'):
        _runner_load(build_whole('gcvit', 'mask_rcnn'), path)


def test_other_depth_whole_model_is_refused_naming_keys(tmp_path):
    deeper = dict(TINY['gcvit'], arch=dict(TINY['gcvit']['arch'], depths=(3, 2, 2, 2)))
    path = authors_checkpoint(build_whole('gcvit', backbone=deeper), 'gcvit', str(tmp_path / 'deep.pth'))
    with pytest.raises(CheckpointError, match=r'match no parameter .*depths \(2, 2, 2, 2\).*levels\.0\.blocks\.2\.'):
        _runner_load(build_whole('gcvit'), path)


def test_a_checkpoint_that_leaves_tensors_unloaded_fails_unless_partial_is_allowed(tmp_path):
    """The silent case of issue 10: a backbone-only (or other-head) checkpoint evaluated as a detector."""
    model = build_whole('crossformer')
    backbone_only = {f'backbone.{k}': v for k, v in model.backbone.state_dict().items()}
    path = str(tmp_path / 'backbone_only.pth')
    torch.save({'state_dict': backbone_only}, path)
    with pytest.raises(CheckpointError, match=r'not in it: neck\..*--allow-partial'):
        _runner_load(build_whole('crossformer', seed=1), path)
    target = build_whole('crossformer', seed=1)
    _runner_load(target, path, allow_partial=True)  # the old behaviour: loaded what fits, logged the rest
    torch.testing.assert_close(target.backbone.state_dict(), model.backbone.state_dict())


def test_backbone_init_cfg_of_another_depth_raises(tmp_path):
    """The other silent case: a GCViT-xtiny-like checkpoint into an xxtiny-like model (more blocks)."""
    from mmengine.registry import MODELS
    arch = TINY['gcvit']['arch']
    path = str(tmp_path / 'deeper.pth')
    torch.save({'state_dict': MODELS.build(dict(type='GCViT', arch=dict(arch, depths=(3, 4, 2, 2)))).state_dict()},
               path)
    model = MODELS.build(dict(type='GCViT', arch=arch, init_cfg=dict(type='Pretrained', checkpoint=path)))
    with pytest.raises(CheckpointError, match=r'match no parameter.*levels\.0\.blocks\.2\.'):
        model.init_weights()


@pytest.mark.parametrize('fixture_name', ['mm2x_module_names.json', 'mm1x_mask2former_module_names.json'])
def test_released_heads_have_the_submodule_names_of_the_installed_releases(fixture_name):
    """Why HEAD_RENAMES is empty: the submodules (hence the state-dict keys) of every neck/head the authors
    released are named alike in mmdet 2.28.2 / mmseg 0.30.0 (and, for TransNeXt's Mask2Former, mmseg 1.0.0 /
    mmdet 3.0.0 / mmcv 2.0.0; fixtures) and the installed mmdet 3 / mmseg 1 / mmcv 2."""
    import importlib
    fixture = json.load(open(osp.join(FIXTURES, 'whole_models', fixture_name)))
    pattern = re.compile(fixture.pop('_pattern'))
    for release in fixture.values():
        for rel, names in release.items():
            library, path = rel.split('/', 1)
            source = open(osp.join(osp.dirname(importlib.import_module(library).__file__), path)).read()
            installed = sorted({m for groups in pattern.findall(source) for m in groups if m})
            assert installed == names, (rel, set(installed) ^ set(names))
    assert HEAD_RENAMES == {'mmdet': {2: []}, 'mmseg': {0: []}}


def test_mmseg_twins_semantic_fpn_release_loads(tmp_path):
    """The Twins Semantic FPN weights the configs name are OpenMMLab's (mmseg 0.20, its own ``SVT`` class):
    such a file, made here from mmseg's installed ``SVT`` with the same widths, loads with nothing missing."""
    from mmseg.registry import MODELS
    arch = TINY['twins']['arch']
    target = build_whole('twins', 'sem_fpn', seed=1)
    theirs = MODELS.build(dict(type='SVT', embed_dims=arch['embed_dims'], num_heads=arch['num_heads'],
                               mlp_ratios=arch['mlp_ratios'], depths=arch['depths'], sr_ratios=arch['sr_ratios'],
                               windiow_sizes=arch['window_sizes'], norm_after_stage=True, qkv_bias=True))
    state = {f'backbone.{k}': v for k, v in theirs.state_dict().items()}
    state.update({k: v for k, v in target.state_dict().items() if not k.startswith('backbone.')})
    path = str(tmp_path / 'twins_svt-s_fpn_fpnhead.pth')
    torch.save({'state_dict': state, 'meta': {'mmseg_version': '0.20.0'}}, path)
    report = load_whole_model(target, path)
    assert report['missing'] == [] and report['mismatched'] == [] and report['unexpected'] == []
    assert any(k.startswith('backbone.layers.') for k in state)  # mmseg's keys, not ours
