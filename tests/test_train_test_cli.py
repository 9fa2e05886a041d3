"""tools/test.py and tools/train.py: the authors' whole models, strictness, --out/--show-dir/--tta, fast --help."""
import os
import os.path as osp
import pickle
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from config_checks import build_model
from mmvit_backbones import runner_utils
from mmvit_backbones.demo import make_demo_data
from test_whole_models import to_authors

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
NUM_VAL = 2
# A small Twins-SVT UperNet on the ADE20K-layout demo data (kept here so that demo changes do not move it).
SEG_CONFIG_TEXT = f"""
_base_ = ['mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/default_runtime.py',
          {osp.join(ROOT, 'configs/_base_/custom_imports.py')!r}]
classes = ('background', 'circle', 'square', 'triangle')
dims = [16, 32, 64, 128]
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(_delete_=True, type='TwinsSVT', arch=dict(embed_dims=dims, depths=[1, 1, 2, 1],
                  num_heads=[1, 2, 4, 8], mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1], window_sizes=[7, 7, 7, 7])),
    decode_head=dict(in_channels=dims, channels=16, num_classes=4, norm_cfg=dict(type='BN')),
    auxiliary_head=dict(in_channels=dims[2], channels=8, num_classes=4, norm_cfg=dict(type='BN')))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root='data/demo/ade/', metainfo=dict(classes=classes),
                 img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                           dict(type='PackSegInputs')]))
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(type='LoggerHook', interval=1))
"""


def _run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'))
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize('tool', ['train', 'test', 'convert_checkpoint'])
def test_help_imports_neither_torch_nor_mmengine(tool):
    """``--help`` parses before the heavy imports (it answers in well under a second on an idle machine)."""
    code, out = _run(['-X', 'importtime', osp.join(ROOT, 'tools', f'{tool}.py'), '--help'], ROOT)
    assert code == 0 and 'usage:' in out
    imported = {line.rsplit('|', 1)[-1].strip() for line in out.splitlines() if line.startswith('import time:')}
    assert not imported & {'torch', 'mmengine', 'mmvit_backbones', 'numpy'}, imported & {'torch', 'mmengine'}


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """Demo data, and the demo UperNet saved as the authors' mmseg 0.x code writes Twins checkpoints."""
    root = tmp_path_factory.mktemp('cli')
    make_demo_data(str(root / 'data' / 'demo'), num_train=2, num_val=NUM_VAL, seed=0)
    config = root / 'upernet_twins_svt_demo.py'
    config.write_text(SEG_CONFIG_TEXT)
    model = build_model(Config.fromfile(str(config)))
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    authors = {f'backbone.{k}': v for k, v in to_authors('twins', backbone).items()}
    authors.update({k: v for k, v in state.items() if not k.startswith('backbone.')})
    meta = {'mmseg_version': '0.30.0', 'CLASSES': ('background', 'circle', 'square', 'triangle')}
    whole = str(root / 'upernet_alt_gvt_authors.pth')
    torch.save({'state_dict': authors, 'meta': meta}, whole)
    partial = str(root / 'no_decode_head.pth')
    torch.save({'state_dict': {k: v for k, v in authors.items() if not k.startswith('decode_head.')}, 'meta': meta},
               partial)
    return root, str(config), whole, partial, len(state)


def test_test_py_evaluates_the_authors_segmentor_and_writes_outputs(demo):
    root, config, whole, _, num_tensors = demo
    code, out = _run([osp.join(ROOT, 'tools/test.py'), config, whole, '--work-dir', str(root / 'w'),
                      '--out', str(root / 'preds.pkl'), '--show-dir', str(root / 'vis')], str(root))
    assert code == 0, out[-3000:]
    # every tensor but BN's num_batches_tracked (not a parameter) came from the checkpoint
    loaded = re.search(r'EncoderDecoder: loaded (\d+)/(\d+) tensors from .*written by mmseg 0\.30\.0, backbone keys '
                       r'converted as twins', out)
    assert loaded and loaded.group(2) == str(num_tensors), out[-3000:]
    assert 'missing, left at their initialisation' not in out and re.search(r'mIoU: [0-9.]+', out)
    with open(root / 'preds.pkl', 'rb') as f:
        assert len(pickle.load(f)) == NUM_VAL
    drawn = [name for _, _, names in os.walk(root / 'vis') for name in names if name.endswith(('.png', '.jpg'))]
    assert len(drawn) == NUM_VAL, drawn


def test_test_py_refuses_a_checkpoint_that_leaves_the_head_random(demo):
    root, config, _, partial, _ = demo
    code, out = _run([osp.join(ROOT, 'tools/test.py'), config, partial, '--work-dir', str(root / 'p')], str(root))
    assert code != 0
    assert re.search(r'tensors of the model are not in it: decode_head\.', out) and '--allow-partial' in out
    assert not re.search(r'mIoU: [0-9.]+', out)  # no metric of random weights


def _seg_config(tmp_path) -> Config:
    path = tmp_path / 'seg.py'
    path.write_text(SEG_CONFIG_TEXT)
    return Config.fromfile(str(path))


def test_tta_needs_the_configs_tta_model_and_pipeline(tmp_path):
    cfg = _seg_config(tmp_path)
    assert 'tta_model' in cfg and 'tta_pipeline' not in cfg
    with pytest.raises(ValueError, match='--tta needs tta_pipeline in the config'):
        runner_utils.setup_test_outputs(cfg, 'mmseg', tta=True)
    cfg.tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[[
        dict(type='RandomFlip', prob=0.0), dict(type='RandomFlip', prob=1.0)], [dict(type='PackSegInputs')]])]
    model = cfg.model.type
    runner_utils.setup_test_outputs(cfg, 'mmseg', tta=True)
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module.type == model
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'


def test_out_and_show_dir_settings(tmp_path):
    cfg = _seg_config(tmp_path)
    runner_utils.setup_test_outputs(cfg, 'mmseg', out='label_maps', show_dir='vis')
    assert cfg.test_evaluator.output_dir == 'label_maps' and cfg.test_evaluator.keep_results
    assert cfg.default_hooks.visualization.draw and cfg.visualizer.save_dir == 'vis'
    with pytest.raises(ValueError, match=r"--out 'preds.json': the dump file must end with .pkl"):
        runner_utils.setup_test_outputs(_seg_config(tmp_path), 'mmdet', out='preds.json')
    bare = Config(dict(default_hooks=dict(logger=dict(type='LoggerHook')), visualizer=dict(type='DetLocalVisualizer')))
    runner_utils.setup_test_outputs(bare, 'mmdet', show_dir='vis')  # a trimmed default_hooks gets the scope's hook
    assert bare.default_hooks.visualization == dict(type='DetVisualizationHook', draw=True, test_out_dir='vis')
    with pytest.raises(ValueError, match='--show-dir needs a visualizer'):
        runner_utils.setup_test_outputs(Config(dict()), 'mmdet', show_dir='vis')


def test_dataset_hint_names_the_config_keys(tmp_path):
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='RepeatDataset', dataset=dict(data_root=str(tmp_path / 'coco'),
                                                                              ann_file='train.json'))),
        val_dataloader=dict(dataset=dict(data_root=str(tmp_path / 'coco'), ann_file='val.json'))))
    with pytest.raises(FileNotFoundError) as err:
        runner_utils.check_datasets(cfg, ('train_dataloader', 'val_dataloader'))
    message = str(err.value)
    assert '--cfg-options train_dataloader.dataset.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR' \
        in message and str(tmp_path / 'coco' / 'train.json') in message


def test_cfg_options_are_parsed_like_mmengine():
    assert runner_utils.parse_cfg_options(['a.b=1', 'c=[1,2]', 'd=x']) == {'a.b': 1, 'c': [1, 2], 'd': 'x'}
    assert runner_utils.parse_cfg_options(None) is None
