"""The command-line tools end to end on the embedded demo data (CPU, small and short runs)."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS

from mmvit_backbones.demo import make_demo_data

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CFG = osp.join(ROOT, 'configs/demo/mask_rcnn_twins_demo.py')
SEG_CFG = osp.join(ROOT, 'configs/demo/upernet_twins_demo.py')


def _run(args, cwd, env=None, timeout=900):
    full_env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'), **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-4000:]}'
    return out


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    make_demo_data(str(root / 'data' / 'demo'), num_train=32, num_val=12, seed=0)
    return root


def test_demo_data_is_deterministic_coco_and_ade(tmp_path):
    from pycocotools.coco import COCO
    a = make_demo_data(str(tmp_path / 'a'), num_train=4, num_val=2, seed=1)
    b = make_demo_data(str(tmp_path / 'b'), num_train=4, num_val=2, seed=1)
    ann = 'annotations/instances_train2017.json'
    assert open(osp.join(a['coco'], ann)).read() == open(osp.join(b['coco'], ann)).read()
    coco = COCO(osp.join(a['coco'], ann))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) >= 4
    assert sorted(c['name'] for c in coco.loadCats(coco.getCatIds())) == ['circle', 'square', 'triangle']
    import cv2
    label = cv2.imread(osp.join(a['ade'], 'annotations/training/train_0000.png'), cv2.IMREAD_UNCHANGED)
    assert label.dtype.name == 'uint8' and set(label.ravel().tolist()) <= {1, 2, 3, 4} and 1 in label


def _metric(out: str, name: str) -> float:
    values = re.findall(rf'{re.escape(name)}: (-?[0-9.]+)', out)
    assert values, f'{name} not in output'
    return float(values[-1])


@pytest.fixture(scope='module')
def seg_run(demo_root, tmp_path_factory):
    """A short UperNet run on the ADE20K-layout demo data: (log output, checkpoint path)."""
    work = str(tmp_path_factory.mktemp('seg') / 'work')
    out = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), SEG_CFG, '--work-dir', work, '--cfg-options',
                'train_cfg.max_iters=160', 'train_cfg.val_interval=160', 'default_hooks.checkpoint.interval=160',
                'param_scheduler.1.end=160'], demo_root)
    return out, osp.join(work, 'iter_160.pth')


def test_train_segmentation_above_chance(seg_run):
    out, ckpt = seg_run
    # Predicting only the dominant background class gives mIoU <= 25 (one of four classes right).
    assert _metric(out, 'mIoU') > 40.0, out[-3000:]
    assert osp.isfile(ckpt)


def _losses(out: str):
    return [float(v) for v in re.findall(r'Epoch\(train\).*? loss: ([0-9.]+)', out)]


def test_train_resume_and_test_detection(demo_root, seg_run, tmp_path):
    """tools/train.py trains 2 epochs (backbone from the segmentor's checkpoint, `backbone.` keys, via
    init_cfg), --resume continues from the saved epoch, tools/test.py evaluates the result."""
    work = str(tmp_path / 'work')
    init = ['model.backbone.init_cfg.type=Pretrained', f'model.backbone.init_cfg.checkpoint={seg_run[1]}']
    first = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), DET_CFG, '--work-dir', work, '--cfg-options',
                  'train_cfg.max_epochs=2', 'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=1',
                  'default_hooks.logger.interval=4', *init], demo_root)
    assert 'TwinsSVT: loaded 148/148 tensors' in first
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    out = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), DET_CFG, '--work-dir', work, '--resume',
                '--cfg-options', 'train_cfg.max_epochs=4', 'train_cfg.val_interval=4',
                'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=4', *init], demo_root)
    assert 'resumed epoch: 2, iter: 16' in out
    assert re.search(r'Epoch\(train\) +\[3\]', out) and not re.search(r'Epoch\(train\) +\[1\]', out)
    losses = _losses(first) + _losses(out)
    assert losses[-1] < 0.85 * losses[0], f'detector loss did not go down: {losses}'
    for name in ('coco/bbox_mAP_50', 'coco/segm_mAP_50'):
        assert _metric(out, name) >= 0.0
    ckpt = torch.load(osp.join(work, 'epoch_4.pth'), map_location='cpu')  # weights-only, via compat allowlist
    assert ckpt['meta']['epoch'] == 4
    test_out = _run([sys.executable, osp.join(ROOT, 'tools/test.py'), DET_CFG, osp.join(work, 'epoch_4.pth'),
                     '--work-dir', str(tmp_path / 'test')], demo_root)
    assert _metric(test_out, 'coco/bbox_mAP_50') == _metric(out, 'coco/bbox_mAP_50')


def test_dist_train_two_cpu_processes(demo_root, tmp_path):
    """tools/dist_train.sh: torchrun with 2 CPU processes (gloo) runs a few iterations with DDP."""
    work = str(tmp_path / 'work')
    out = _run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), SEG_CFG, '2', '--work-dir', work, '--cfg-options',
                'train_cfg.max_iters=4', 'train_cfg.val_interval=100', 'default_hooks.checkpoint.interval=4',
                'default_hooks.logger.interval=2', 'param_scheduler.0.end=2', 'param_scheduler.1.begin=2',
                'param_scheduler.1.end=4'],
               demo_root, env=dict(PYTHON=sys.executable, PORT=str(29500 + os.getpid() % 1000)))
    assert 'Distributed training is not used' not in out
    assert re.search(r'world_size: 2|Distributed launcher: pytorch', out)
    assert osp.isfile(osp.join(work, 'iter_4.pth'))


def test_benchmark_tool(tmp_path):
    out_json = str(tmp_path / 'bench.json')
    out = _run([sys.executable, osp.join(ROOT, 'tools/benchmark.py'), '--models', 'TwinsPCPVT:small', '--sizes',
                '64x96', '--iters', '1', '--warmup', '0', '--threads', '1', '--out', out_json], ROOT)
    result = json.load(open(out_json))
    assert result['machine']['torch'] == torch.__version__
    rows = result['rows']
    assert [r['mode'] for r in rows] == ['forward', 'forward+backward']
    assert all('error' not in r and r['images_per_s'] > 0 and r['params_m'] > 20 for r in rows)
    assert '| TwinsPCPVT:small | 64x96 | forward |' in out
    # the training pass allocates the gradients (4 bytes x 23.6M parameters) after the peak-memory reset
    assert rows[1]['peak_mem_mb'] > 0.9 * rows[1]['params_m'] * 4 * 1e6 / 2 ** 20


def test_convert_checkpoint_cli(tmp_path):
    model = MODELS.build(dict(type='TwinsSVT', arch='small'))
    src = str(tmp_path / 'src.pth')
    torch.save({'state_dict_ema': model.state_dict(), 'epoch': 3}, src)
    dst = str(tmp_path / 'dst.pth')
    out = _run([sys.executable, osp.join(ROOT, 'tools/convert_checkpoint.py'), '--family', 'twins', src, dst], ROOT)
    assert 'TwinsSVT' in out
    converted = torch.load(dst, map_location='cpu')
    assert converted['meta']['type'] == 'TwinsSVT' and converted['meta']['arch'] == 'small'
    for k, v in model.state_dict().items():
        torch.testing.assert_close(converted['state_dict'][k], v)
    # the converted file loads through init_cfg
    again = MODELS.build(dict(type='TwinsSVT', arch='small', init_cfg=dict(type='Pretrained', checkpoint=dst)))
    again.init_weights()
    torch.testing.assert_close(again.state_dict()['stages.0.patch_embed.proj.weight'],
                               model.state_dict()['stages.0.patch_embed.proj.weight'])
    # a checkpoint of another family is refused with a message naming the problem
    bad = str(tmp_path / 'bad.pth')
    torch.save({'something.weight': torch.ones(1)}, bad)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools/convert_checkpoint.py'), '--family', 'twins', bad,
                           str(tmp_path / 'x.pth')], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and 'is not a twins checkpoint' in proc.stderr
