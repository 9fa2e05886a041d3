"""The command-line tools end to end on the embedded demo data (CPU, small and short runs).

No wall-clock limits: a machine shared with other jobs may be many times slower, and only a real hang should fail.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.registry import MODELS

from mmvit_backbones.demo import all_background_miou, make_demo_data, read_scalars

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CFG = osp.join(ROOT, 'configs/demo/dino_transnext_demo.py')
SEG_CFG = osp.join(ROOT, 'configs/demo/upernet_transnext_demo.py')
SEG_ITERS = 160
DET_EPOCHS = (2, 4)  # the first run, then --resume to the second
# A detector that predicts nothing scores mAP50 0; a random one scores near 0 too.
MIN_DET_MAP50 = 0.5


def _run(args, cwd, env=None):
    full_env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '2'), **(env or {}))
    proc = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{" ".join(args)} failed:\n{out[-4000:]}'
    return out


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    """The demo data at its `make demo` size (generation takes about a second)."""
    root = tmp_path_factory.mktemp('demo')
    make_demo_data(str(root / 'data' / 'demo'), seed=0)
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
    # the COCO boxes are the ADE masks' extents: the two layouts show the same scenes
    first = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    for ann in first:
        x, y, w, h = (int(round(v)) for v in ann['bbox'])
        assert (label[y:y + h, x:x + w] == 1 + ann['category_id']).any()


def test_all_background_baseline_matches_iou_metric(tmp_path):
    """The baseline the demo prints is what mmseg's IoUMetric gives a segmentor predicting background only."""
    import cv2
    import numpy as np
    from mmseg.evaluation import IoUMetric
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    paths = make_demo_data(str(tmp_path / 'd'), num_train=1, num_val=3, seed=2)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('background', 'circle', 'square', 'triangle'))
    label_dir = osp.join(paths['ade'], 'annotations/validation')
    for name in sorted(os.listdir(label_dir)):
        gt = cv2.imread(osp.join(label_dir, name), cv2.IMREAD_UNCHANGED).astype(np.int64) - 1  # reduce_zero_label
        sample = SegDataSample(gt_sem_seg=PixelData(data=torch.from_numpy(gt)[None]),
                               pred_sem_seg=PixelData(data=torch.zeros_like(torch.from_numpy(gt))[None]))
        metric.process([], [sample.to_dict()])
    expected = metric.compute_metrics(metric.results)['mIoU']
    assert abs(all_background_miou(paths['ade']) - expected) < 0.01


def _metric(out: str, name: str) -> float:
    values = re.findall(rf'{re.escape(name)}: (-?[0-9.]+)', out)
    assert values, f'{name} not in output'
    return float(values[-1])


@pytest.fixture(scope='module')
def seg_run(demo_root, tmp_path_factory):
    """A short UperNet run on the ADE20K-layout demo data: (log output, checkpoint path, work dir)."""
    work = str(tmp_path_factory.mktemp('seg') / 'work')
    out = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), SEG_CFG, '--work-dir', work, '--cfg-options',
                f'train_cfg.max_iters={SEG_ITERS}', f'train_cfg.val_interval={SEG_ITERS}',
                f'default_hooks.checkpoint.interval={SEG_ITERS}', f'param_scheduler.1.end={SEG_ITERS}'], demo_root)
    return out, osp.join(work, f'iter_{SEG_ITERS}.pth'), work


def test_train_segmentation_well_above_all_background(seg_run, demo_root):
    out, ckpt, work = seg_run
    baseline = all_background_miou(str(demo_root / 'data/demo/ade'))
    assert baseline < 30, baseline
    assert _metric(out, 'mIoU') > baseline + 40, out[-3000:]
    assert osp.isfile(ckpt)
    # the validation overlays are drawn (SegVisualizationHook, draw=True)
    runs = [d for d in os.listdir(work) if osp.isdir(osp.join(work, d, 'vis_data', 'vis_image'))]
    assert runs and len(os.listdir(osp.join(work, runs[0], 'vis_data', 'vis_image'))) >= 3


def _losses(out: str):
    return [float(v) for v in re.findall(r'Epoch\(train\).*? loss: ([0-9.]+)', out)]


@pytest.fixture(scope='module')
def det_run(demo_root, seg_run, tmp_path_factory):
    """tools/train.py trains the demo DINO (backbone from the segmentor's checkpoint, `backbone.` keys, via
    init_cfg) for DET_EPOCHS[0] epochs, then --resume continues to DET_EPOCHS[1]: (first log, resumed log, work)."""
    work = str(tmp_path_factory.mktemp('det') / 'work')
    first_epochs, last_epochs = DET_EPOCHS
    common = ['default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=12',
              'model.backbone.init_cfg.type=Pretrained', f'model.backbone.init_cfg.checkpoint={seg_run[1]}',
              f'param_scheduler.1.end={last_epochs}', f'param_scheduler.1.milestones=[{last_epochs - 1}]']
    first = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), DET_CFG, '--work-dir', work, '--cfg-options',
                  f'train_cfg.max_epochs={first_epochs}', 'train_cfg.val_interval=100', *common], demo_root)
    assert osp.isfile(osp.join(work, f'epoch_{first_epochs}.pth'))  # (the resumed run keeps only its last one)
    resumed = _run([sys.executable, osp.join(ROOT, 'tools/train.py'), DET_CFG, '--work-dir', work, '--resume',
                    '--cfg-options', f'train_cfg.max_epochs={last_epochs}', f'train_cfg.val_interval={last_epochs}',
                    *common], demo_root)
    return first, resumed, work


def test_train_detection_learns_and_resumes(det_run):
    first, out, work = det_run
    first_epochs, last_epochs = DET_EPOCHS
    assert 'TransNeXt: loaded 160/160 tensors' in first
    assert f'resumed epoch: {first_epochs}, iter: {first_epochs * 48}' in out
    assert re.search(rf'Epoch\(train\) +\[{first_epochs + 1}\]', out) and not re.search(r'Epoch\(train\) +\[1\]', out)
    losses = _losses(first) + _losses(out)
    assert losses[-1] < 0.7 * losses[0], f'detector loss did not go down: {losses}'
    # far above a detector that predicts nothing (mAP 0)
    assert _metric(out, 'coco/bbox_mAP_50') >= MIN_DET_MAP50, out[-3000:]
    assert _metric(out, 'coco/bbox_mAP') > 0.4 * MIN_DET_MAP50
    ckpt = torch.load(osp.join(work, f'epoch_{last_epochs}.pth'), map_location='cpu')  # weights-only, compat allowlist
    assert ckpt['meta']['epoch'] == last_epochs
    # the boxes are drawn on validation images (DetVisualizationHook, draw=True)
    records = read_scalars(work)
    assert any('coco/bbox_mAP' in r for r in records)
    runs = sorted(d for d in os.listdir(work) if osp.isdir(osp.join(work, d, 'vis_data', 'vis_image')))
    assert runs and len(os.listdir(osp.join(work, runs[-1], 'vis_data', 'vis_image'))) >= 3


def test_test_py_reproduces_the_validation(demo_root, det_run, tmp_path):
    out, work = det_run[1], det_run[2]
    ckpt = osp.join(work, f'epoch_{DET_EPOCHS[1]}.pth')
    test_out = _run([sys.executable, osp.join(ROOT, 'tools/test.py'), DET_CFG, ckpt,
                     '--work-dir', str(tmp_path / 'test')], demo_root)
    assert _metric(test_out, 'coco/bbox_mAP_50') == _metric(out, 'coco/bbox_mAP_50')


def test_demo_summary_prints_metrics_baselines_and_paths(demo_root, seg_run, det_run, tmp_path):
    out = _run([sys.executable, osp.join(ROOT, 'tools/demo_summary.py'), '--seg-work-dir', seg_run[2],
                '--det-work-dir', det_run[2], '--data-root', str(demo_root / 'data/demo')], ROOT)
    baseline = all_background_miou(str(demo_root / 'data/demo/ade'))
    assert f'all-background baseline {baseline:.1f}' in out
    assert f'mIoU {_metric(seg_run[0], "mIoU"):5.1f}' in out
    assert f'mAP50 {_metric(det_run[1], "coco/bbox_mAP_50"):.3f}' in out and 'predicting nothing: 0.000' in out
    for work in (seg_run[2], det_run[2]):
        assert osp.getsize(osp.join(work, 'curves.png')) > 1000
        assert osp.join(work, 'last_checkpoint') not in out and work in out


def test_infer_writes_pictures_and_json(demo_root, seg_run, det_run, tmp_path):
    images = demo_root / 'data/demo/coco/val2017'
    det_ckpt = osp.join(det_run[2], f'epoch_{DET_EPOCHS[1]}.pth')
    out = _run([sys.executable, osp.join(ROOT, 'tools/infer.py'), DET_CFG, det_ckpt, str(images / 'val_0000.jpg'),
                str(images / 'val_0001.jpg'), '--out-dir', str(tmp_path / 'det'), '--device', 'cpu'], demo_root)
    assert '2 image(s)' in out
    pred = json.load(open(tmp_path / 'det/preds/val_0000.json'))
    assert len(pred['bboxes']) == len(pred['scores']) == len(pred['labels']) > 0
    assert osp.isfile(tmp_path / 'det/vis/val_0000.jpg')
    seg_images = demo_root / 'data/demo/ade/images/validation'
    _run([sys.executable, osp.join(ROOT, 'tools/infer.py'), SEG_CFG, seg_run[1], str(seg_images / 'val_0000.jpg'),
          '--out-dir', str(tmp_path / 'seg'), '--device', 'cpu'], demo_root)
    pred = json.load(open(tmp_path / 'seg/preds/val_0000.json'))
    assert pred['classes'] == ['background', 'circle', 'square', 'triangle']
    assert sum(pred['pixels'].values()) == 128 * 128 and pred['pixels']['background'] > 128 * 128 / 3
    assert osp.isfile(tmp_path / 'seg/vis/val_0000.jpg') and osp.isfile(pred['mask'])


@pytest.mark.parametrize('tool', ['tools/infer.py', 'tools/make_demo_data.py', 'tools/demo_summary.py'])
def test_help_parses_before_importing_the_stack(tool):
    """`--help` answers without importing torch/mmengine (which takes seconds): parse first, import after."""
    probe = (f'import runpy, sys\nsys.argv = [{tool!r}, "--help"]\n'
             f'try:\n    runpy.run_path({osp.join(ROOT, tool)!r}, run_name="__main__")\nexcept SystemExit:\n    pass\n'
             'heavy = sorted(m for m in ("torch", "mmengine", "mmdet", "mmseg", "cv2") if m in sys.modules)\n'
             'print("HEAVY", heavy)')
    out = _run([sys.executable, '-c', probe], ROOT)
    assert 'usage:' in out and 'HEAVY []' in out, out


@pytest.mark.parametrize('script, nargs', [('dist_train.sh', 2), ('dist_test.sh', 3), ('slurm_train.sh', 3),
                                           ('slurm_test.sh', 4)])
def test_shell_tools_print_usage(script, nargs, tmp_path):
    path = osp.join(ROOT, 'tools', script)
    helped = subprocess.run(['bash', path, '--help'], capture_output=True, text=True)
    assert helped.returncode == 0 and helped.stdout.startswith('usage:'), helped
    missing = subprocess.run(['bash', path] + ['x'] * (nargs - 1), capture_output=True, text=True)
    assert missing.returncode == 2 and 'usage:' in missing.stderr and 'unbound variable' not in missing.stderr
    # with all arguments: PYTHON when set, else the repository's .venv python when there is one, else `python`
    fake = tmp_path / 'python'
    fake.write_text('#!/bin/sh\necho "RAN $*"\n')
    (tmp_path / 'srun').write_text('#!/bin/sh\necho "SRUN $*"\n')
    for exe in ('python', 'srun'):
        (tmp_path / exe).chmod(0o755)
    args = ['bash', path] + ['a1', 'a2', 'a3', 'a4'][:nargs] + ['--extra']
    path_env = f'{tmp_path}:{os.environ["PATH"]}'
    ran = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, PYTHON=str(fake), PATH=path_env))
    assert ran.returncode == 0 and '--extra' in ran.stdout, ran
    assert (str(fake) in ran.stdout) if script.startswith('slurm') else ran.stdout.startswith('RAN -m torch.dist')
    if script.startswith('slurm'):  # srun is faked, so the default python is only named, not run
        env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
        ran = subprocess.run(args, capture_output=True, text=True, env=dict(env, PATH=path_env))
        venv = osp.join(ROOT, '.venv', 'bin', 'python')
        assert (venv if osp.exists(venv) else ' python -u ') in ran.stdout, ran


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

    # --help parses before importing torch; --compile without a C++ compiler says so instead of failing
    tool = osp.join(ROOT, 'tools/benchmark.py')
    probe = (f'import runpy, sys\nsys.argv = [{tool!r}, "--help"]\ntry:\n    runpy.run_path({tool!r}, run_name="__main__")\n'
             'except SystemExit:\n    pass\nprint("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH")')
    out = _run([sys.executable, '-c', probe], ROOT)
    assert '--compile' in out and 'NO_TORCH' in out
    env = dict(os.environ, PATH=str(tmp_path), CXX='')
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools/benchmark.py'), '--models', 'TwinsPCPVT:small',
                           '--sizes', '64x64', '--modes', 'forward', '--iters', '1', '--warmup', '0', '--threads', '1',
                           '--compile', '--out', out_json], capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'no C++ compiler found' in proc.stdout
    rows = json.load(open(out_json))['rows']
    assert [bool(r.get('compiled')) for r in rows] == [False, True]
    assert 'error' not in rows[0] and 'needs a C++ compiler' in rows[1]['error']
    assert '| TwinsPCPVT:small | 64x64 | forward |' in proc.stdout and 'speed-up' in proc.stdout


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
