"""Mixed precision as users run it (issue 20 items 3-4), on the CPU.

* ``tools/train.py --amp`` trains one step of every family (mmengine's ``AmpOptimWrapper`` on a GPU;
  without one :class:`~mmvit_backbones.runner_utils.CPUAmpOptimWrapper`, bfloat16 autocast), loss finite.
* CUDA's fp16/bf16 autocast emulated on the CPU (``amp_checks.cuda_like_autocast``: CUDA's float32 list,
  SDPA as a torch 2.1 GPU kernel computes it): every family's forward and backward are finite, every
  additive attention mask stays finite in the dtype autocast casts it to, and the attention logits that
  need float32 (XCiT's cross-covariance, TransNeXt's cosine attention) reach the softmax in float32.
* CrossFormer++ 'main' grouping at 228x260 (DINO's ``pad_size_divisor=1`` gives such sizes), where whole LDA
  groups are padding: fp16 masks, finite outputs and gradients (issue 20: NaN gradients before).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS

from amp_checks import cpu_autocast_supports, cuda_like_autocast
from backbone_checks import TINY_ARCHS
from mmvit_backbones.demo import make_demo_data
from mmvit_backbones.models.backbones.crossformer import NEG_INF, group_partition, padded_key_mask, plan_groups

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TYPES = sorted(TINY_ARCHS)
SIZE = (64, 80)  # 80 is no multiple of 7: the padding (and mask) paths run
FP32_LOGITS = ('XCiT', 'TransNeXt')  # their softmax logits are computed in float32 on purpose

fp16 = pytest.param(torch.float16, id='fp16', marks=pytest.mark.skipif(
    not cpu_autocast_supports(torch.float16), reason='CPU float16 autocast needs a newer torch (2.3+)'))
bf16 = pytest.param(torch.bfloat16, id='bf16')


def projection_loss(outs):
    """A loss with a real gradient everywhere: the maps projected on fixed random tensors."""
    gen = torch.Generator().manual_seed(1)
    return sum((o.float() * torch.randn(o.shape, generator=gen)).sum() for o in outs)


def train_step(model, x, dtype):
    with cuda_like_autocast(dtype) as log:
        outs = model(x)
        loss = projection_loss(outs)
    loss.backward()
    assert all(torch.isfinite(o).all() for o in outs), [bool(torch.isfinite(o).all()) for o in outs]
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f'non-finite gradients in {bad[:5]}'
    assert not log.bad_masks, f'additive masks not finite in {log.bad_masks[:3]}'
    return log


@pytest.mark.parametrize('dtype', [fp16, bf16])
@pytest.mark.parametrize('type_name', TYPES)
def test_cuda_like_autocast_forward_backward(type_name, dtype):
    torch.manual_seed(0)
    model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name]))
    model.reset_parameters()
    log = train_step(model.train(), torch.randn(2, 3, *SIZE), dtype)
    if type_name in FP32_LOGITS:
        assert log.softmax_dtypes and set(log.softmax_dtypes) == {torch.float32}, log.softmax_dtypes
        assert set(log.sdpa_dtypes) <= {torch.float32}, log.sdpa_dtypes
    else:  # plain attention: SDPA in the low dtype (its kernels accumulate in float32)
        assert log.sdpa_dtypes and set(log.sdpa_dtypes) == {dtype}, log.sdpa_dtypes


@pytest.mark.parametrize('dtype', [fp16, bf16])
def test_crossformer_pp_fully_padded_groups_under_amp(dtype):
    """228x260: stage 1 is 57x65, padded to 112x112 for the I=8 LDA; many groups hold only padding."""
    plan = plan_groups(57, 65, 7, 8, True, 'main')
    pad = torch.ones(1, *plan.padded, 1, dtype=torch.bool)
    pad[:, :57, :65] = False
    assert group_partition(pad, 7, 7, 8).squeeze(-1).all(-1).any()  # the case exists at this size
    for h, w in ((57, 65), (15, 15), (8, 100), (29, 33)):  # no group masks all its keys, in any plan
        for grouping in ('v1', 'main'):
            for interval, long_distance in ((8, True), (4, True), (1, False)):
                plan = plan_groups(h, w, 7, interval, long_distance, grouping)
                mask = padded_key_mask(h, w, plan, torch.device('cpu'))
                assert mask is None or not mask.all(-1).any(), (h, w, grouping, interval)
    for low in (torch.float16, torch.bfloat16):
        assert torch.isfinite(torch.tensor(NEG_INF - 100.0, dtype=low))  # the mask value plus a bias

    torch.manual_seed(0)
    arch = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), grouping='main', acl=True)
    model = MODELS.build(dict(type='CrossFormer', arch=arch))  # 'pp-small' layout, depth 2 per stage
    model.reset_parameters()
    log = train_step(model.train(), torch.randn(1, 3, 228, 260), dtype)
    assert set(log.sdpa_dtypes) == {dtype}


# --------------------------------------------------------------------------- tools/train.py --amp
CONFIG = '''
_base_ = ['mmseg::_base_/default_runtime.py', {custom_imports!r}]
crop_size = (64, 80)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size),
    backbone=dict(type={type_name!r}, arch={arch!r}, out_indices=(3,)),
    decode_head=dict(type='FCNHead', in_channels={channels}, in_index=0, channels=8, num_convs=1, concat_input=False,
                     num_classes=4, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type='InfiniteSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root={data_root!r}, img_suffix='.jpg', seg_map_suffix='.png',
                 reduce_zero_label=True, metainfo=dict(classes=('background', 'circle', 'square', 'triangle')),
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True),
                           dict(type='PackSegInputs')]))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=1, val_interval=100)
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3))
default_hooks = dict(logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
                     checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=100, save_last=False))
visualizer = dict(type='SegLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='amp_{type_name}')
'''

# One process runs tools/train.py's main() once per config (imports paid once); per run it reports the
# optimizer wrapper, the autocast state the backbone's forward ran under, and the loss.
DRIVER = '''
import importlib.util, json, sys
import torch
spec = importlib.util.spec_from_file_location('train_tool', sys.argv[1])
train_tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_tool)
from mmvit_backbones import runner_utils
build_runner, seen = runner_utils.build_runner, {}

def spy(cfg):
    runner = build_runner(cfg)
    def pre_hook(module, args):
        if hasattr(torch, 'get_autocast_dtype'):  # torch >= 2.4
            on, dtype = torch.is_autocast_enabled('cpu'), torch.get_autocast_dtype('cpu')
        else:
            on, dtype = torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()
        seen['autocast'] = str(dtype) if on else None
    runner.model.backbone.register_forward_pre_hook(pre_hook)
    seen['runner'] = runner
    return runner

runner_utils.build_runner = spy
for config in sys.argv[2:]:
    sys.argv = ['train.py', config, '--amp', '--work-dir', config[:-3]]
    train_tool.main()
    runner = seen.pop('runner')
    loss = runner.message_hub.get_scalar('train/loss').current()
    print('RESULT', json.dumps(dict(config=config, wrapper=type(runner.optim_wrapper).__name__,
                                    autocast=seen.pop('autocast'), loss=float(loss))), flush=True)
'''


def test_train_amp_one_step_every_family(tmp_path):
    data_root = str(tmp_path / 'ade')
    make_demo_data(str(tmp_path), num_train=2, num_val=1, size=64, seed=0)
    configs = []
    for type_name in TYPES:
        model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name], out_indices=(3,)))
        path = tmp_path / f'amp_{type_name.lower()}.py'
        path.write_text(CONFIG.format(custom_imports=osp.join(ROOT, 'configs/_base_/custom_imports.py'),
                                      type_name=type_name, arch=TINY_ARCHS[type_name],
                                      channels=model.out_channels[0], data_root=data_root + '/'))
        configs.append(str(path))
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, str(driver), osp.join(ROOT, 'tools/train.py'), *configs], cwd=tmp_path,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:]
    results = [json.loads(line[len('RESULT '):]) for line in proc.stdout.splitlines() if line.startswith('RESULT ')]
    assert [r['config'] for r in results] == configs
    cuda = torch.cuda.is_available()
    for r in results:
        assert r['wrapper'] == ('AmpOptimWrapper' if cuda else 'CPUAmpOptimWrapper'), r
        assert cuda or r['autocast'] == 'torch.bfloat16', r
        assert torch.isfinite(torch.tensor(r['loss'])) and r['loss'] > 0, r
    assert cuda or 'bfloat16 autocast on the CPU' in proc.stdout
