"""Exact resume (issue 13 item 4): a run killed with SIGKILL after a checkpoint and resumed with
``--resume`` logs the same per-iteration losses as the uninterrupted run, on CPU, with dropout and
random flips on. Iteration- and epoch-based loops, and 2-process gloo DDP.

Each case runs the real ``tools/train.py`` three times on a tiny config that inherits the shipped demo
UperNet config: uninterrupted; killed (SIGKILL to its process group) while it waits right after the
checkpoint; resumed. The wait is a test-only hook (``pause_probe.py``, written to tmp) that sleeps after
``CheckpointHook`` has saved, so the kill always lands at the same point; it draws no random numbers.
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from mmengine.config import Config

from mmvit_backbones.demo import make_demo_data
from mmvit_backbones.engine import RNGStateHook, capture_rng_state, restore_rng_state

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The shipped demo UperNet config (renamed from the Twins to the TransNeXt demo; whichever exists).
DEMO_CONFIG = osp.join(ROOT, 'configs/demo/upernet_transnext_demo.py')
HANG_GUARD_S = 1800  # only a real hang fails; a busy machine is just slower
MAX_ITERS, CKPT_EVERY = 8, 4
MAX_EPOCHS, CKPT_EVERY_EPOCHS = 3, 2  # 6 images, batch 2: 3 iterations per epoch
LOGGED_KEYS_SKIPPED = ('time', 'data_time', 'memory', 'eta', 'step', 'iter', 'epoch')

PAUSE_PROBE = '''
"""Test-only: after the checkpoint at MMVIT_PAUSE_AT (iteration or epoch), write a marker and wait to be killed."""
import os
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseAfterCheckpoint(Hook):
    priority = 'LOWEST'  # after CheckpointHook ('VERY_LOW') has written the file

    def _maybe_pause(self, runner, done):
        if os.environ.get('MMVIT_PAUSE_AT') != str(done):
            return
        if runner.rank == 0:
            with open(os.path.join(runner.work_dir, 'paused'), 'w') as f:
                f.write(str(done))
        while True:
            time.sleep(0.05)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not runner.train_loop.__class__.__name__.startswith('Epoch'):
            self._maybe_pause(runner, runner.iter + 1)

    def after_train_epoch(self, runner):
        self._maybe_pause(runner, runner.epoch + 1)
'''


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('resume_data'))
    make_demo_data(root, num_train=6, num_val=2, size=64, seed=0)
    with open(osp.join(root, 'pause_probe.py'), 'w') as f:
        f.write(PAUSE_PROBE)
    return root


def write_config(path: str, data_root: str, epoch_based: bool) -> str:
    demo = Config.fromfile(DEMO_CONFIG)
    # the shipped hooks (RNGStateHook from configs/_base_/custom_imports.py) plus the test's pause point
    hooks = list(demo.get('custom_hooks', [])) + [dict(type='PauseAfterCheckpoint')]
    imports = list(demo.custom_imports['imports']) + ['pause_probe']
    ade = osp.join(data_root, 'ade') + '/'
    if epoch_based:
        schedule = f'''
train_dataloader = dict(batch_size=2, sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
                        dataset=dict(data_root={ade!r}))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs={MAX_EPOCHS}, val_interval={CKPT_EVERY_EPOCHS})
default_hooks = dict(logger=dict(interval=1, log_metric_by_epoch=False),
                     checkpoint=dict(by_epoch=True, interval={CKPT_EVERY_EPOCHS}, max_keep_ckpts=-1))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end={MAX_EPOCHS},
                        by_epoch=True)]
'''
    else:
        schedule = f'''
train_dataloader = dict(batch_size=2, dataset=dict(data_root={ade!r}))
train_cfg = dict(max_iters={MAX_ITERS}, val_interval={CKPT_EVERY})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={CKPT_EVERY}, max_keep_ckpts=-1))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end={MAX_ITERS},
                        by_epoch=False)]
'''
    text = f'''
_base_ = [{DEMO_CONFIG!r}]
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
custom_hooks = {hooks!r}
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size))
val_dataloader = dict(dataset=dict(data_root={ade!r}))
test_dataloader = val_dataloader
log_processor = dict(by_epoch=False, window_size=1)  # per-iteration values, not a running mean
''' + schedule
    if demo.model.backbone.get('type') == 'TransNeXt':
        text += "model.update(backbone=dict(img_size=64))\n"
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text))
    return path


def train_command(config: str, work_dir: str, nprocs: int, resume: bool):
    args = [config, '--work-dir', work_dir] + (['--resume'] if resume else [])
    if nprocs == 1:
        return [sys.executable, osp.join(ROOT, 'tools/train.py')] + args
    return ['bash', osp.join(ROOT, 'tools/dist_train.sh'), args[0], str(nprocs)] + args[1:]


def run_env(data_root: str, pause_at=None, port: int = 0) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(port),
               PYTHONPATH=os.pathsep.join([ROOT, data_root, os.environ.get('PYTHONPATH', '')]))
    env.pop('MMVIT_PAUSE_AT', None)
    if pause_at is not None:
        env['MMVIT_PAUSE_AT'] = str(pause_at)
    return env


def run(cmd, env, cwd):
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def run_and_kill(cmd, env, cwd, work_dir: str, checkpoint: str):
    """Start ``cmd`` in its own process group, wait until it pauses after ``checkpoint``, SIGKILL the group."""
    log = open(osp.join(cwd, 'killed_run.log'), 'w')
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    marker = osp.join(work_dir, 'paused')
    start = time.monotonic()
    try:
        while not osp.exists(marker):
            if proc.poll() is not None:
                log.close()
                pytest.fail(f'training exited ({proc.returncode}) before pausing:\n'
                            + open(log.name).read()[-4000:])
            assert time.monotonic() - start < HANG_GUARD_S, 'hang guard: the run never reached its checkpoint'
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert osp.isfile(osp.join(work_dir, checkpoint)), os.listdir(work_dir)


def logged_losses(work_dir: str) -> dict:
    """``{step: {key: value}}`` from every run's vis_data/scalars.json in ``work_dir``; a step twice fails."""
    steps = {}
    for stamp in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' not in record:  # validation metrics
                    continue
                step = record['iter']
                assert step not in steps, f'iteration {step} logged twice in {work_dir}'
                steps[step] = {k: v for k, v in record.items() if k not in LOGGED_KEYS_SKIPPED}
    return steps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check_resume(tmp_path, data_root, epoch_based: bool, nprocs: int):
    port = free_port()
    config = write_config(str(tmp_path / 'tiny_upernet.py'), data_root, epoch_based)
    ref_dir, cut_dir = str(tmp_path / 'uninterrupted'), str(tmp_path / 'killed')
    run(train_command(config, ref_dir, nprocs, resume=False), run_env(data_root, port=port), str(tmp_path))
    pause_at = CKPT_EVERY_EPOCHS if epoch_based else CKPT_EVERY
    checkpoint = f'epoch_{pause_at}.pth' if epoch_based else f'iter_{pause_at}.pth'
    run_and_kill(train_command(config, cut_dir, nprocs, resume=False), run_env(data_root, pause_at, port),
                 str(tmp_path), cut_dir, checkpoint)
    out = run(train_command(config, cut_dir, nprocs, resume=True), run_env(data_root, port=port), str(tmp_path))
    assert 'random-number states restored' in out, out[-4000:]

    reference, resumed = logged_losses(ref_dir), logged_losses(cut_dir)
    assert len(reference) >= MAX_ITERS, reference
    assert sorted(resumed) == sorted(reference)
    for step in sorted(reference):
        assert resumed[step] == reference[step], f'iteration {step}: {resumed[step]} != {reference[step]}'
    # dropout is on, so equal losses are not an accident of a deterministic model
    model = Config.fromfile(config, import_custom_modules=False).model
    assert model.decode_head.get('dropout_ratio', 0.1) > 0


def test_resume_iter_based_is_the_same_run(tmp_path, tiny_data):
    check_resume(tmp_path, tiny_data, epoch_based=False, nprocs=1)


def test_resume_epoch_based_is_the_same_run(tmp_path, tiny_data):
    check_resume(tmp_path, tiny_data, epoch_based=True, nprocs=1)


def test_resume_ddp_gloo_is_the_same_run(tmp_path, tiny_data):
    check_resume(tmp_path, tiny_data, epoch_based=False, nprocs=2)


# ------------------------------------------------------------------------------------ unit level
def _draws():
    import random

    import numpy as np
    return torch.rand(4), np.random.rand(4), np.random.randn(), random.random()


def _assert_same_draws(first, second):
    import numpy as np
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def _tensors_in(obj) -> list:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors_in(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors_in(v)]
    return []


@pytest.mark.parametrize('map_location', ['cpu', 'meta'])
def test_rng_state_round_trip_under_weights_only_load_on_any_device(tmp_path, map_location):
    """mmengine resumes with ``map_location`` = the GPU: the saved states hold no tensor it could move, so they
    restore whatever device the checkpoint was mapped to (``meta`` stands in for a GPU here: it keeps no data)."""
    import numpy as np

    from mmvit_backbones import compat
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = capture_rng_state()
    assert not _tensors_in(state)
    first = _draws()
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'rng_states': dict(version=2, world_size=1, ranks=[state])}, path)
    loaded = compat.load_weights_only(path, map_location=map_location)['rng_states']['ranks'][0]
    restore_rng_state(loaded)
    _assert_same_draws(first, _draws())


def test_rng_state_of_format_1_restores_from_tensors():
    """Checkpoints written before format 2 hold the states as tensors; they still restore (moved to the CPU)."""
    from mmvit_backbones.engine.hooks import _raw_rng_state
    torch_state, np_state, (version, words, gauss), _ = _raw_rng_state()
    first = _draws()
    restore_rng_state(dict(torch=torch_state, numpy=dict(
        key=torch.from_numpy(np_state['state']['key'].astype('int64')), pos=np_state['state']['pos'],
        has_gauss=np_state['has_gauss'], gauss=np_state['gauss']),
        python=dict(version=version, words=torch.tensor(words, dtype=torch.int64), gauss=gauss)))
    _assert_same_draws(first, _draws())


def test_hook_is_registered_and_on_in_the_shared_base():
    from mmengine.registry import HOOKS
    assert HOOKS.get('RNGStateHook') is RNGStateHook
    base = Config.fromfile(osp.join(ROOT, 'configs/_base_/custom_imports.py'))
    assert dict(type='RNGStateHook') in base.custom_hooks
    assert base.custom_imports['imports'] == ['mmvit_backbones']  # importing the package registers the hook
    assert dict(type='RNGStateHook') in Config.fromfile(DEMO_CONFIG).custom_hooks


def test_tools_keep_the_hook_in_configs_that_replace_custom_hooks(tmp_path):
    from mmvit_backbones import runner_utils
    config = tmp_path / 'own_hooks.py'
    config.write_text(f"_base_ = [{DEMO_CONFIG!r}]\ncustom_hooks = [dict(type='EMAHook')]\n")
    cfg = runner_utils.load_config(str(config), work_dir=str(tmp_path))
    assert [h['type'] for h in cfg.custom_hooks] == ['EMAHook', 'RNGStateHook']
    cfg = runner_utils.load_config(DEMO_CONFIG, work_dir=str(tmp_path))  # already there: not added twice
    assert [h['type'] for h in cfg.custom_hooks] == ['RNGStateHook']
