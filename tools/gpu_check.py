"""The first-GPU check: every family's speed, memory and numerics on one CUDA GPU, plus the training paths.

    python tools/gpu_check.py                       # about 8 minutes on one GPU; writes benchmarks/gpu.json and .md
    python tools/gpu_check.py --sections families   # one section; --models TYPE:ARCH ... for other variants
    make gpu-check

Never run by CI. Without a CUDA device it stops at once (exit status 2) with one line saying so. Sections, in
the order they run (each item records an ``error`` instead of stopping the run; the exit status is 1 if any
check failed):

* ``environment``: GPU, its memory and compute capability, driver, torch, CUDA, cuDNN, mmcv (and the CUDA its
  ops were built with), mmengine, mmdet, mmseg, triton, the TF32 switches.
* ``families``: each family's default variant (GCViT-T, Twins-PCPVT-S, Twins-SVT-S, CrossFormer-S,
  XCiT-S12/16, TransNeXt-T) at 512x512 and 800x1216, batch 2, random weights: forward (eval, no_grad) and
  forward+backward (train mode) median time of ``--iters`` CUDA-synchronised passes after ``--warmup`` ones,
  ``torch.cuda.max_memory_allocated`` during them; the fp32 output's relative L2 error against the same
  model on the CPU in fp32 (TF32 off for that comparison); under ``torch.autocast('cuda')`` in fp16 and
  bf16, the output's error against fp32 and whether a training step's loss and gradients are finite.
* ``transnext_kernels``: TransNeXt-T's aggregated attention, the Triton kernel against the PyTorch path
  (``tools/benchmark.py``'s ``compare_transnext_paths``): time, memory and the largest relative difference, in
  fp32, bf16 and fp16, forward and forward+backward.
* ``resume``: a real ``tools/train.py`` run of a tiny config inheriting the demo UperNet, killed with SIGKILL
  after its checkpoint and resumed with ``--resume``, against an uninterrupted run (tests/test_resume.py on the
  GPU): whether it resumes, and the largest loss difference (GPU kernels need not repeat bit for bit).
* ``demo``: a few iterations of both demo configs (configs/demo/) on the GPU, on freshly generated demo data;
  the DINO run with ``--amp`` (fp16 AmpOptimWrapper).
* ``compile``: ``torch.compile`` (inductor, PyTorch's default ``dynamic=None``) of each family's forward: the
  speed-up over eager at the first size, the compile time, and the graphs compiled over three input sizes
  (recompiles) and graph breaks. It runs last: with ``--budget-min`` (default 7) spent, the rest is skipped
  and listed under ``skipped``.
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_MODELS = ['GCViT:tiny', 'TwinsPCPVT:small', 'TwinsSVT:small', 'CrossFormer:small', 'XCiT:small-12-p16',
                  'TransNeXt:tiny']
SECTIONS = ('families', 'transnext_kernels', 'resume', 'demo', 'compile')
COMPILE_SIZES = [(512, 512), (640, 800), (800, 1216)]
AMP_DTYPES = ('float16', 'bfloat16')
RESUME_ITERS, RESUME_CKPT = 8, 4
NO_CUDA_EXIT = 2
# Largest difference between two aggregated-attention paths that still counts as the same function: the maps'
# max|x - x_base| / max|x_base| and the worst parameter gradient's relative L2 difference (Triton's fp32 dots
# run in TF32 on Ampere and later, the PyTorch path in full fp32).
KERNEL_TOLERANCE = {'float32': 1e-2, 'bfloat16': 1e-1, 'float16': 1e-1}
NEEDS_MMCV_OPS = ('resume', 'demo')  # mmdet/mmseg models import mmcv.ops


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default='benchmarks/gpu.json', help='JSON report (the markdown table beside it)')
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS,
                        help='TYPE:ARCH entries; ARCH an arch name or a JSON dict (default: each family\'s default)')
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(512, 512), (800, 1216)],
                        help='HxW input sizes (default: 512x512 800x1216)')
    parser.add_argument('--compile-sizes', nargs='+', type=parse_size, default=COMPILE_SIZES,
                        help='HxW sizes for torch.compile, recompiles counted over them (default: 512x512 640x800 '
                             '800x1216)')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--iters', type=int, default=5, help='timed passes (the median is reported)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--budget-min', type=float, default=7.0,
                        help='no new item starts after this many minutes (skipped ones are listed)')
    # test-only: run the code path on the CPU (tests/test_gpu_check.py), with a compile backend that needs no C++
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'], help=argparse.SUPPRESS)
    parser.add_argument('--compile-backend', default='inductor', choices=['inductor', 'eager'],
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(args.compile_sizes) < 2:
        parser.error('--compile-sizes needs at least two sizes (recompiles are counted over them)')
    return args


def parse_size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size {text!r} is not HxW (e.g. 512x512)') from None
    return h, w


def parse_model(spec: str):
    """``'TYPE:ARCH'`` -> ``(type, arch)``; ARCH an arch name or a JSON dict (a custom variant)."""
    import json
    type_name, _, arch = spec.partition(':')
    if not type_name or not arch:
        raise ValueError(f'model {spec!r} is not TYPE:ARCH (e.g. GCViT:tiny)')
    return type_name, json.loads(arch) if arch.lstrip().startswith('{') else arch


def label(spec: str) -> str:
    type_name, arch = parse_model(spec)
    return spec if isinstance(arch, str) else f'{type_name}:custom'


# ------------------------------------------------------------------------------------------- helpers
class Clock:
    """Wall time since the start, and the budget after which no new item starts."""

    def __init__(self, budget_s: float) -> None:
        import time
        self._time = time.monotonic
        self.start, self.budget_s = self._time(), budget_s

    def elapsed(self) -> float:
        return self._time() - self.start

    def spent(self) -> bool:
        return self.elapsed() > self.budget_s


def error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f'{type(exc).__name__}: {lines[-1] if lines else ""}'[:500]


def synchronize(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def median_time(fn, iters: int, warmup: int, device: str) -> float:
    """Median seconds of ``iters`` synchronised calls after ``warmup`` untimed ones."""
    import time
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(1, iters)):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def peak_mb(device: str):
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device == 'cuda' else None


def reset_peak(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def rel_err(outs, refs) -> float:
    """Largest relative L2 error over the output maps."""
    return max(((o.float().cpu() - r.float().cpu()).norm() / r.float().cpu().norm().clamp_min(1e-12)).item()
               for o, r in zip(outs, refs))


def square_loss(outs):
    return sum(o.float().pow(2).mean() for o in outs)


def autocast_supported(device: str, dtype) -> bool:
    """CUDA autocasts to fp16 and bf16 (bf16 from compute capability 8.0 on); CPU autocast to bf16, and to fp16
    from torch 2.3 on (torch 2.1 warns, then raises)."""
    import warnings

    import torch
    if device == 'cuda':
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with torch.autocast(device, dtype=dtype):
                return torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype == dtype
    except RuntimeError:
        return False


def build_model(spec: str):
    import torch
    from mmengine.registry import MODELS
    type_name, arch = parse_model(spec)
    torch.manual_seed(0)
    model = MODELS.build(dict(type=type_name, arch=arch))
    model.reset_parameters()  # the family's own initialisation (init_weights would log every parameter)
    return model


def make_input(batch: int, size, device: str):
    import torch
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, *size, generator=gen).to(device)


# ------------------------------------------------------------------------------------------- sections
def environment(device: str) -> dict:
    import platform
    import subprocess

    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                device=device, cpu_threads=torch.get_num_threads(),
                tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    if device == 'cuda':
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    capability=f'{props.major}.{props.minor}', gpu_count=torch.cuda.device_count())
        try:
            info['driver'] = subprocess.run(['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                                            capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            info['driver'] = None
    for name in ('mmcv', 'mmengine', 'mmdet', 'mmseg', 'triton'):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001  (a report: any failure to import is the finding)
            info[name] = f'not importable ({error_text(exc)})'
    try:
        from mmcv.ops import get_compiling_cuda_version
        info['mmcv_ops_cuda'] = get_compiling_cuda_version()
    except Exception as exc:  # noqa: BLE001
        info['mmcv_ops_cuda'] = f'no compiled ops ({error_text(exc)})'
    return info


def family_case(spec: str, size, args) -> dict:
    """Speed, memory, fp32 error against the CPU and AMP numerics of one model at one size."""
    import copy

    import torch
    device, batch = args.device, args.batch
    row = dict(model=label(spec), size=f'{size[0]}x{size[1]}', batch=batch)
    cpu_model = build_model(spec).eval()
    row['params_m'] = round(sum(p.numel() for p in cpu_model.parameters()) / 1e6, 2)
    model = copy.deepcopy(cpu_model).to(device)
    x = make_input(batch, size, device)

    def forward():
        with torch.no_grad():
            return model(x)

    def train_step():
        loss = square_loss(model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)

    reset_peak(device)
    row['forward_ms'] = round(median_time(forward, args.iters, args.warmup, device) * 1e3, 2)
    row['forward_peak_mb'] = peak_mb(device)
    model.train()
    reset_peak(device)
    row['forward_backward_ms'] = round(median_time(train_step, args.iters, args.warmup, device) * 1e3, 2)
    row['forward_backward_peak_mb'] = peak_mb(device)
    model.eval()

    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 here
    try:
        reference = [o.float() for o in forward()]
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if device != 'cpu':
        with torch.no_grad():
            row['fp32_vs_cpu_rel_err'] = rel_err(reference, cpu_model(x.cpu()))
    del cpu_model

    row['amp'] = {}
    for name in AMP_DTYPES:
        dtype = getattr(torch, name)
        if not autocast_supported(device, dtype):  # the CPU of an older torch (tests only)
            row['amp'][name] = dict(unsupported=f'no {name} autocast on {device} in torch {torch.__version__}')
            continue
        with torch.no_grad(), torch.autocast(device, dtype=dtype):
            outs = model(x)
        amp = dict(finite=all(bool(torch.isfinite(o).all()) for o in outs), rel_err=rel_err(outs, reference))
        model.train()
        with torch.autocast(device, dtype=dtype):
            loss = square_loss(model(x))
        loss.backward()
        amp['loss_finite'] = bool(torch.isfinite(loss))
        amp['grads_finite'] = all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
        model.zero_grad(set_to_none=True)
        model.eval()
        row['amp'][name] = amp
    row['ok'] = (device == 'cpu' or row['fp32_vs_cpu_rel_err'] < 1e-3) and all(
        a['finite'] and a['loss_finite'] and a['grads_finite'] for a in row['amp'].values() if 'unsupported' not in a)
    return row


def compile_case(spec: str, args) -> dict:
    """``torch.compile`` speed-up at the first size and the graphs compiled over all the sizes."""
    import time

    import torch
    import torch._dynamo
    device, sizes = args.device, args.compile_sizes
    row = dict(model=label(spec), backend=args.compile_backend, sizes=[f'{h}x{w}' for h, w in sizes])
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(len(gm.graph.nodes))
        if args.compile_backend == 'eager':
            return gm.forward
        from torch._inductor.compile_fx import compile_fx
        return compile_fx(gm, example_inputs)

    model = build_model(spec).to(device).eval()
    compiled = torch.compile(model, backend=counting_backend)  # dynamic=None, as users get it
    x = make_input(args.batch, sizes[0], device)
    with torch.no_grad():
        eager = median_time(lambda: model(x), args.iters, args.warmup, device)
        start = time.perf_counter()
        compiled(x)
        synchronize(device)
        row['compile_s'] = round(time.perf_counter() - start, 1)
        fast = median_time(lambda: compiled(x), args.iters, args.warmup, device)
        row.update(eager_ms=round(eager * 1e3, 2), compiled_ms=round(fast * 1e3, 2), speedup=round(eager / fast, 3))
        row['graphs_first_size'] = len(graphs)
        row['new_graphs_per_size'] = []
        for size in sizes[1:]:
            before = len(graphs)
            compiled(make_input(args.batch, size, device))
            row['new_graphs_per_size'].append(len(graphs) - before)
    row['recompiles'] = sum(row['new_graphs_per_size'])
    row['graph_breaks'] = sum(torch._dynamo.utils.counters['graph_break'].values())
    torch._dynamo.reset()
    return row


def load_tool(name: str):
    """A module of ``tools/`` by its file (the tools are scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'mmvit_tools_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def transnext_kernels(args) -> dict:
    """TransNeXt's aggregated attention, Triton kernel against the PyTorch path (``tools/benchmark.py``'s
    ``compare_transnext_paths``: the default TransNeXt-T, fp32/bf16/fp16, forward and forward+backward)."""
    # ---------------------------------------------------------------------------------------------------------
    # TRANSNEXT KERNELS: the Triton-vs-PyTorch comparison is tools/benchmark.py's compare_transnext_paths; a
    # different comparison function is wired in HERE. Without a usable Triton (or on the CPU) it compares the
    # PyTorch path with the reference path instead, and says why.
    # ---------------------------------------------------------------------------------------------------------
    import math

    from mmvit_backbones.ops.aggregated_attention import triton_status
    usable, why = triton_status()
    impls = ('fast', 'triton') if args.device == 'cuda' and usable else ('fast', 'reference')
    rows = load_tool('benchmark').compare_transnext_paths(sizes=tuple(args.sizes), impls=impls, batch=args.batch,
                                                          iters=args.iters, warmup=args.warmup, device=args.device)
    bad = [r for r in rows if not all(math.isfinite(r.get(k, 0.0)) and r.get(k, 0.0) <= KERNEL_TOLERANCE[r['dtype']]
                                      for k in ('max_rel_diff', 'max_param_grad_rel_diff'))]
    return dict(triton_usable=usable, triton=why, impls=list(impls), rows=rows, tolerance=KERNEL_TOLERANCE,
                ok=not bad)


RESUME_PROBE = '''
"""After the checkpoint at iteration MMVIT_PAUSE_AT, write a marker and wait to be killed (tools/gpu_check.py)."""
import os
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseAfterCheckpoint(Hook):
    priority = 'LOWEST'  # after CheckpointHook ('VERY_LOW') has written the file

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if os.environ.get('MMVIT_PAUSE_AT') == str(runner.iter + 1):
            open(os.path.join(runner.work_dir, 'paused'), 'w').close()
            while True:
                time.sleep(0.05)
'''

RESUME_CONFIG = '''
_base_ = [{demo!r}]
custom_imports = dict(imports=['mmvit_backbones', 'pause_probe'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook'), dict(type='PauseAfterCheckpoint')]
crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(batch_size=2, dataset=dict(data_root={ade!r}))
val_dataloader = dict(dataset=dict(data_root={ade!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={ckpt})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={ckpt}, max_keep_ckpts=-1))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end={iters}, by_epoch=False)]
log_processor = dict(by_epoch=False, window_size=1)
'''


def _train_env(extra_path: str = '', pause_at=None) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, extra_path, os.environ.get('PYTHONPATH'))
                                                      if p))
    env.pop('MMVIT_PAUSE_AT', None)
    if pause_at is not None:
        env['MMVIT_PAUSE_AT'] = str(pause_at)
    return env


def _run_train(argv, cwd: str, env: dict) -> str:
    import subprocess
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'tools/train.py'), *argv], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise RuntimeError(f'tools/train.py {" ".join(argv)} exited {proc.returncode}: {proc.stdout[-2000:]}')
    return proc.stdout


def logged_losses(work_dir: str) -> dict:
    """``{iteration: loss}`` from every run's vis_data/scalars.json in ``work_dir``."""
    import json
    losses = {}
    for stamp in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            with open(path) as f:
                for line in f:
                    record = json.loads(line)
                    if 'loss' in record:
                        losses[record['iter']] = record['loss']
    return losses


def resume_check(tmp: str) -> dict:
    """Uninterrupted run; the same run killed (SIGKILL) after its checkpoint; resumed with ``--resume``."""
    import signal
    import subprocess
    import time

    from mmvit_backbones.demo import make_demo_data
    make_demo_data(tmp, num_train=6, num_val=2, size=64, seed=0)
    with open(osp.join(tmp, 'pause_probe.py'), 'w') as f:
        f.write(RESUME_PROBE)
    from mmengine.config import Config
    demo = osp.join(ROOT, 'configs/demo/upernet_transnext_demo.py')
    text = RESUME_CONFIG.format(demo=demo, ade=osp.join(tmp, 'ade') + '/', iters=RESUME_ITERS, ckpt=RESUME_CKPT)
    if Config.fromfile(demo).model.backbone.get('img_size'):  # a backbone built for one input size (TransNeXt)
        text += "model.setdefault('backbone', {})['img_size'] = 64\n"
    config = osp.join(tmp, 'resume_upernet.py')
    with open(config, 'w') as f:
        f.write(text)
    ref_dir, cut_dir = osp.join(tmp, 'uninterrupted'), osp.join(tmp, 'killed')
    _run_train([config, '--work-dir', ref_dir], tmp, _train_env(tmp))
    with open(osp.join(tmp, 'killed.log'), 'w') as log:
        proc = subprocess.Popen([sys.executable, osp.join(ROOT, 'tools/train.py'), config, '--work-dir', cut_dir],
                                cwd=tmp, env=_train_env(tmp, RESUME_CKPT), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            while not osp.exists(osp.join(cut_dir, 'paused')):
                if proc.poll() is not None:
                    raise RuntimeError(f'the run to be killed exited ({proc.returncode}) before its checkpoint')
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = _run_train([config, '--work-dir', cut_dir, '--resume'], tmp, _train_env(tmp))
    reference, resumed = logged_losses(ref_dir), logged_losses(cut_dir)
    steps = sorted(set(reference) & set(resumed))
    diff = max((abs(reference[s] - resumed[s]) for s in steps), default=None)
    return dict(iterations=RESUME_ITERS, killed_after=RESUME_CKPT, rng_restored='random-number states restored' in out,
                compared=len(steps), max_abs_loss_diff=diff, exact=diff == 0.0,
                ok=len(steps) == RESUME_ITERS and diff is not None and diff < 1e-2)


def demo_check(tmp: str) -> list:
    """A few iterations of both demo configs on freshly generated demo data; DINO with ``--amp``."""
    import time

    from mmvit_backbones.demo import make_demo_data
    make_demo_data(osp.join(tmp, 'data', 'demo'), num_train=16, num_val=4, seed=0)
    runs = [('configs/demo/upernet_transnext_demo.py', [], ['train_cfg.max_iters=10', 'train_cfg.val_interval=10',
                                                         'default_hooks.logger.interval=1']),
            ('configs/demo/dino_transnext_demo.py', ['--amp'], ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                                                                'default_hooks.logger.interval=1'])]
    rows = []
    for config, flags, options in runs:
        work_dir = osp.join(tmp, osp.splitext(osp.basename(config))[0])
        row = dict(config=config, flags=' '.join(flags))
        start = time.perf_counter()
        try:
            _run_train([osp.join(ROOT, config), '--work-dir', work_dir, *flags, '--cfg-options', *options], tmp,
                       _train_env())
            losses = logged_losses(work_dir)
            row.update(iterations=len(losses), last_loss=losses[max(losses)] if losses else None)
            row['ok'] = bool(losses) and all(v == v and abs(v) != float('inf') for v in losses.values())
        except Exception as exc:  # noqa: BLE001  (a report: the failure is the finding)
            row.update(ok=False, error=error_text(exc))
        row['wall_s'] = round(time.perf_counter() - start, 1)
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------- report
def run_checks(args) -> dict:
    import tempfile

    import mmvit_backbones  # noqa: F401  (registers the backbones)
    clock = Clock(args.budget_min * 60)
    report = dict(environment=environment(args.device),
                  settings=dict(batch=args.batch, iters=args.iters, warmup=args.warmup,
                                sizes=[f'{h}x{w}' for h, w in args.sizes], models=[label(m) for m in args.models]),
                  skipped=[])

    def item(name, fn, *fargs):
        report['wall_s'] = round(clock.elapsed(), 1)
        write_report(report, args.out)  # what is done so far survives a run killed at its time limit
        if clock.spent():
            report['skipped'].append(name)
            print(f'skipped (time budget of {args.budget_min} min spent): {name}', flush=True)
            return None
        try:
            result = fn(*fargs)
        except Exception as exc:  # noqa: BLE001  (a report: the failure is the finding, the next item runs)
            result = dict(ok=False, error=error_text(exc))
        print(f'[{clock.elapsed():6.0f} s] {name}: {result}', flush=True)
        return result

    for section in SECTIONS:
        if section not in args.sections:
            continue
        if section in NEEDS_MMCV_OPS and 'no compiled ops' in str(report['environment']['mmcv_ops_cuda']):
            skip = dict(ok=None, config='-', skipped=f"mmcv here has {report['environment']['mmcv_ops_cuda']}; the "
                                                     'mmdet/mmseg models this section trains import mmcv.ops')
            report[section] = skip if section == 'resume' else [skip]  # demo: one row per config
            print(f'{section}: {skip}', flush=True)
        elif section == 'families':
            report['families'] = []
            for spec in args.models:
                for size in args.sizes:
                    row = item(f'families {label(spec)} {size[0]}x{size[1]}', family_case, spec, size, args)
                    if row is not None:
                        row.setdefault('model', label(spec))
                        row.setdefault('size', f'{size[0]}x{size[1]}')
                        report['families'].append(row)
        elif section == 'transnext_kernels':
            report['transnext_kernels'] = item('transnext_kernels', transnext_kernels, args)
        elif section == 'resume':
            with tempfile.TemporaryDirectory(prefix='gpu_check_resume_') as tmp:
                report['resume'] = item('resume', resume_check, tmp)
        elif section == 'demo':
            with tempfile.TemporaryDirectory(prefix='gpu_check_demo_') as tmp:
                report['demo'] = item('demo', demo_check, tmp)
        elif section == 'compile':
            report['compile'] = []
            for spec in args.models:
                row = item(f'compile {label(spec)}', compile_case, spec, args)
                if row is not None:
                    row.setdefault('model', label(spec))
                    report['compile'].append(row)
    report['wall_s'] = round(clock.elapsed(), 1)
    return report


def failures(report: dict) -> list:
    """Names of the checks that failed (an ``ok`` of False anywhere in the report)."""
    found = []
    for section in ('families', 'compile', 'demo'):
        found += [f"{section} {r.get('model', r.get('config'))} {r.get('size', '')}".strip()
                  for r in report.get(section) or [] if r.get('ok') is False]
    for section in ('resume', 'transnext_kernels'):
        if (report.get(section) or {}).get('ok') is False:
            found.append(section)
    return found


def _fmt(value, digits=1) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        return f'{value:.2e}' if 0 < abs(value) < 1 else f'{value:.{digits}f}'
    return str(value)


def to_markdown(report: dict) -> str:
    env = report['environment']
    lines = ['# GPU check', '',
             f"{env.get('gpu', env['device'])} ({env.get('gpu_memory_gb', '-')} GiB, sm {env.get('capability', '-')}, "
             f"driver {env.get('driver', '-')}); torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, "
             f"mmcv {env.get('mmcv')} (ops CUDA {env.get('mmcv_ops_cuda')}), mmengine {env.get('mmengine')}, "
             f"mmdet {env.get('mmdet')}, mmseg {env.get('mmseg')}, triton {env.get('triton')}; "
             f"TF32 matmul {env['tf32_matmul']}, cuDNN {env['tf32_cudnn']}. Batch {report['settings']['batch']}, "
             f"median of {report['settings']['iters']} synchronised passes; whole check {report['wall_s']} s.", '']
    if report.get('families'):
        lines += ['| backbone | size | forward ms | peak MB | fwd+bwd ms | peak MB | fp32 vs CPU | fp16 err | '
                  'fp16 loss/grads | bf16 err | bf16 loss/grads |', '|' + '---|' * 11]
        for r in report['families']:
            if 'error' in r:
                lines.append(f"| {r['model']} | {r['size']} | error: {r['error']} |" + ' |' * 8)
                continue
            amp = r['amp']
            cells = [r['model'], r['size'], _fmt(r['forward_ms']), _fmt(r['forward_peak_mb']),
                     _fmt(r['forward_backward_ms']), _fmt(r['forward_backward_peak_mb']),
                     _fmt(r.get('fp32_vs_cpu_rel_err'))]
            for name in AMP_DTYPES:
                if 'unsupported' in amp[name]:
                    cells += ['-', 'unsupported']
                    continue
                ok = amp[name]['loss_finite'] and amp[name]['grads_finite']
                cells += [_fmt(amp[name]['rel_err']), 'finite' if ok else '**not finite**']
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
    if report.get('compile'):
        lines += ['| backbone | sizes | eager ms | compiled ms | speed-up | compile s | recompiles | graph breaks |',
                  '|' + '---|' * 8]
        for r in report['compile']:
            if 'error' in r:
                lines.append(f"| {r['model']} | error: {r['error']} |" + ' |' * 6)
                continue
            lines.append(f"| {r['model']} | {', '.join(r['sizes'])} | {_fmt(r['eager_ms'])} | {_fmt(r['compiled_ms'])} "
                         f"| {_fmt(r['speedup'], 2)} | {_fmt(r['compile_s'])} | {r['recompiles']} "
                         f"({r['new_graphs_per_size']}) | {r['graph_breaks']} |")
        lines.append('')
    kernels = report.get('transnext_kernels')
    if kernels and kernels.get('rows'):
        lines += [f"TransNeXt-T aggregated attention, {' vs '.join(kernels['impls'])} ({kernels['triton']}):", '',
                  '| size | dtype | mode | path | median ms | peak MB | max rel diff | worst param grad diff | speed-up |',
                  '|' + '---|' * 9]
        lines += [f"| {r['size']} | {r['dtype']} | {r['mode']} | {r['attn_impl']} | {_fmt(r['median_ms'])} | "
                  f"{_fmt(r['peak_mem_mb'])} | {_fmt(r['max_rel_diff'])} | "
                  f"{_fmt(r.get('max_param_grad_rel_diff'))} {r.get('worst_param') or ''} | {_fmt(r['speedup'], 2)} |"
                  for r in kernels['rows']]
        lines.append('')
    elif kernels:
        lines += [f'TransNeXt kernels: {kernels}', '']
    if report.get('resume'):
        lines += [f"Resume after SIGKILL: {report['resume']}", '']
    for row in report.get('demo') or []:
        lines.append(f"Demo {row['config']} {row.get('flags', '')}: {row}")
    if report.get('skipped'):
        lines += ['', f"Skipped (time budget): {', '.join(report['skipped'])}"]
    return '\n'.join(lines).rstrip() + '\n'


def write_report(report: dict, out: str) -> str:
    """Write ``out`` (JSON) and the markdown beside it (``.md``); returns the markdown's path."""
    import json
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        json.dump(report, f, indent=1)
    markdown = osp.splitext(out)[0] + '.md'
    with open(markdown, 'w') as f:
        f.write(to_markdown(report))
    return markdown


def main(argv=None) -> int:
    args = parse_args(argv)  # before any heavy import: --help and the no-GPU answer come at once
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: no CUDA device here (torch.cuda.is_available() is False); this check needs one GPU',
              file=sys.stderr)
        return NO_CUDA_EXIT
    report = run_checks(args)
    markdown = write_report(report, args.out)
    print('\n' + to_markdown(report))
    failed = failures(report)
    print(f'saved {args.out} and {markdown}' + (f'; FAILED: {", ".join(failed)}' if failed else ''))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
