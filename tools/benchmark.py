"""Backbone throughput and peak memory: forward and forward+backward, per family / arch / input size.

    python tools/benchmark.py                                  # each family's default variant, 512x512 and 800x1216
    python tools/benchmark.py --models TwinsPCPVT:small GCViT:tiny --sizes 224x224 --batch 2 --iters 10
    python tools/benchmark.py --out benchmarks/cpu.json --device cpu --threads 2
    python tools/benchmark.py --compile --sizes 512x512 --modes forward   # eager vs torch.compile side by side
    python tools/benchmark.py --transnext-paths --threads 1    # TransNeXt-T train step, each attention path here

``TYPE:ARCH@IMPL`` builds the backbone with ``attn_impl=IMPL`` (TransNeXt: ``auto``, ``fast``, ``reference``,
``triton``); ``--transnext-paths`` runs TransNeXt-T's training step (forward+backward) once per aggregated-attention
path available on the device (the PyTorch ``fast`` path everywhere, the ``triton`` kernel on CUDA with a usable
``triton``). Rows also carry ``cpu_s``, the process CPU time per timed pass: on a machine shared with other work
it is steadier than the wall time (with ``--threads 1`` it is the single-thread time).
:func:`compare_transnext_paths` compares the Triton kernel with the PyTorch path on CUDA (for GPU checks).

Protocol: random weights, eval mode for "forward" (no_grad), train mode for "forward+backward"
(sum of squared outputs backpropagated), ``--warmup`` untimed iterations, then ``--iters`` timed ones
(``torch.cuda.synchronize`` around each on GPU). Each (model, size, mode) runs in a fresh subprocess so
peak memory is not polluted by earlier cases. Peak memory is the growth over the loaded model and
input: on GPU ``max_memory_allocated`` minus the allocation before the pass; on CPU the process's
peak RSS (``VmHWM``, reset just before the timed passes; ``ru_maxrss`` where it cannot be reset) minus its
RSS before the pass. Results are printed as a table and saved as
JSON together with the machine they ran on.

``--compile`` also runs every case through ``torch.compile(model, fullgraph=True, dynamic=False)``
(inductor, ``--compile-mode``) in its own subprocess; compilation happens during the warm-up (at least
one warm-up pass is forced) and is reported separately as ``compile_s``. The table then shows eager and
compiled time side by side with the speed-up. Forward (inference) cases compile with inductor's
``freezing`` (weights folded in as constants, oneDNN weight prepacking on CPU: inductor's inference setting;
``--no-freezing`` turns it off); forward+backward cases cannot freeze. Inductor on CPU needs a C++ compiler:
without ``gcc``/``cc``/``c++`` on PATH (or ``$CXX``) the compiled column says so instead of failing.
"""
import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time

DEFAULT_MODELS = ['twins-pcpvt-small', 'twins-svt-small', 'gcvit-tiny', 'crossformer-small', 'xcit-small-12-p16',
                  'transnext-tiny']  # create_backbone names (TYPE:ARCH works too)


def machine_info(device: str) -> dict:
    import torch
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    info = dict(python=platform.python_version(), torch=torch.__version__, cpu=cpu, cores=os.cpu_count(),
                threads=torch.get_num_threads(), device=device)
    if device == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def cxx_compiler():
    """The C++ compiler inductor would use on CPU (``$CXX``, else ``g++``/``c++``/``gcc``/``cc`` on PATH), or None."""
    candidates = [os.environ['CXX']] if os.environ.get('CXX') else []
    for name in candidates + ['g++', 'c++', 'gcc', 'cc', 'clang++']:
        path = shutil.which(name)
        if path:
            return path
    return None


def _rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _reset_peak_rss() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``), so that the timed pass must fault its
    memory in again, and reset the kernel's peak-RSS mark (VmHWM), so that building the model and the
    warm-up do not count; Linux only."""
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _peak_rss_bytes(reset: bool) -> int:
    if reset:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # since process start


def transnext_paths(device: str) -> list:
    """The aggregated-attention paths of TransNeXt that run on ``device``: ``fast`` (PyTorch) everywhere,
    ``triton`` on CUDA where ``triton`` is usable."""
    from mmvit_backbones.ops.aggregated_attention import triton_status
    return ['fast'] + (['triton'] if device == 'cuda' and triton_status()[0] else [])


def run_case(model_spec: str, size: str, mode: str, batch: int, iters: int, warmup: int, device: str,
             compile_mode: str = None, freezing: bool = True) -> dict:
    """One measurement, in this process (called in a fresh subprocess by :func:`main`).

    ``compile_mode`` (``'default'``, ``'reduce-overhead'``, ``'max-autotune'``) runs the model through
    ``torch.compile(fullgraph=True, dynamic=False)``; the first warm-up pass compiles (timed as ``compile_s``).
    ``freezing`` applies to forward (inference) cases only.
    """
    import torch

    from mmvit_backbones.api import parse_backbone_name
    spec, _, attn_impl = model_spec.partition('@')  # TYPE:ARCH@IMPL: attn_impl=IMPL
    cls, arch = parse_backbone_name(spec)
    h, w = (int(v) for v in size.lower().split('x'))
    model = cls(arch=arch, **(dict(attn_impl=attn_impl) if attn_impl else {})).to(device)
    x = torch.randn(batch, model.in_channels, h, w, device=device)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    run = model
    if compile_mode:
        if device == 'cpu' and cxx_compiler() is None:
            raise RuntimeError('torch.compile (inductor) on CPU needs a C++ compiler; none found '
                               '(set $CXX or install gcc/g++)')
        freezing = freezing and mode == 'forward'
        if freezing:
            import torch._inductor.config as inductor_config
            inductor_config.freezing = True
        run = torch.compile(model, fullgraph=True, dynamic=False, mode=compile_mode)
        warmup = max(warmup, 1)

    def step():
        if mode == 'forward':
            with torch.no_grad():
                run(x)
        else:
            outs = run(x)
            sum(o.float().pow(2).mean() for o in outs).backward()
            model.zero_grad(set_to_none=True)

    model.train(mode != 'forward')
    compile_s = None
    for i in range(warmup):
        start = time.perf_counter()
        step()
        sync()
        if i == 0 and compile_mode:
            compile_s = time.perf_counter() - start
    sync()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        gc.collect()
        reset = _reset_peak_rss()
        base = _rss_bytes()
    times = []
    cpu_start = time.process_time()
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    cpu_s = (time.process_time() - cpu_start) / max(iters, 1)
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss_bytes(reset) - base
    times.sort()
    median = times[len(times) // 2]
    row = dict(model=model_spec, size=f'{h}x{w}', mode=mode, batch=batch, iters=iters,
               params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
               median_s=round(median, 4), cpu_s=round(cpu_s, 4), images_per_s=round(batch / median, 3),
               peak_mem_mb=round(max(peak, 0) / 2 ** 20, 1))
    if compile_mode:
        row.update(compiled=compile_mode, compile_s=round(compile_s, 1), freezing=freezing)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=None, help='TYPE:ARCH entries (default: every family)')
    parser.add_argument('--sizes', nargs='+', default=['512x512', '800x1216'])
    parser.add_argument('--modes', nargs='+', default=['forward', 'forward+backward'],
                        choices=['forward', 'forward+backward'])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads for CPU runs')
    parser.add_argument('--out', default='benchmarks/benchmark.json')
    parser.add_argument('--compile', action='store_true',
                        help='also time torch.compile(fullgraph=True, dynamic=False) and show eager vs compiled')
    parser.add_argument('--compile-mode', default='default', choices=['default', 'reduce-overhead', 'max-autotune'])
    parser.add_argument('--no-freezing', action='store_true',
                        help="compile forward cases without inductor's freezing (weights as constants)")
    parser.add_argument('--transnext-paths', action='store_true',
                        help="TransNeXt-T's training step once per aggregated-attention path available on the device "
                             '(TransNeXt:tiny@IMPL cases after --models; --modes defaults to forward+backward)')
    parser.add_argument('--case', help=argparse.SUPPRESS)  # internal: run one case and print JSON
    parser.add_argument('--case-compile', help=argparse.SUPPRESS)  # internal: the compile mode of that case
    args = parser.parse_args()

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.case:
        model_spec, size, mode = args.case.split('|')
        print(json.dumps(run_case(model_spec, size, mode, args.batch, args.iters, args.warmup, device,
                                  args.case_compile, not args.no_freezing)))
        return
    if args.compile and device == 'cpu' and cxx_compiler() is None:
        print('WARNING: no C++ compiler found (gcc/g++/cc, or $CXX): torch.compile (inductor) cannot build CPU '
              'kernels here; the compiled column will report the error', flush=True)

    import mmvit_backbones  # noqa: F401
    specs = args.models or DEFAULT_MODELS
    modes = args.modes
    if args.transnext_paths:
        specs = (args.models or []) + [f'transnext-tiny@{impl}' for impl in transnext_paths(device)]
        modes = args.modes if '--modes' in sys.argv else ['forward+backward']
    rows = []
    for spec in specs:
        for size in args.sizes:
            for mode in modes:
                for compile_mode in [None] + ([args.compile_mode] if args.compile else []):
                    cmd = [sys.executable, __file__, '--case', f'{spec}|{size}|{mode}', '--batch', str(args.batch),
                           '--iters', str(args.iters), '--warmup', str(args.warmup), '--device', device]
                    if args.threads:
                        cmd += ['--threads', str(args.threads)]
                    if compile_mode:
                        cmd += ['--case-compile', compile_mode] + (['--no-freezing'] if args.no_freezing else [])
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    if proc.returncode != 0:
                        err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'failed'
                        rows.append(dict(model=spec, size=size, mode=mode, error=err))
                        if compile_mode:
                            rows[-1]['compiled'] = compile_mode
                    else:
                        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                    print(_format_row(rows[-1]), flush=True)
    result = dict(machine=machine_info(device), batch=args.batch, iters=args.iters, warmup=args.warmup, rows=rows)
    if args.compile:
        result['machine']['cxx'] = cxx_compiler()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    print()
    print(to_markdown(result))
    print(f'\nsaved to {args.out}')


def compare_transnext_paths(sizes=((512, 512), (800, 1216)), dtypes=('float32', 'bfloat16', 'float16'),
                            modes=('forward', 'forward+backward'), impls=('fast', 'triton'), arch='tiny',
                            batch: int = 1, iters: int = 10, warmup: int = 3, device: str = 'cuda') -> list:
    """TransNeXt's aggregated-attention paths side by side in one process, on the same weights and input.

    For each size, dtype (``float32``; ``bfloat16``/``float16`` through ``torch.autocast``) and mode (``forward``:
    eval under ``no_grad``; ``forward+backward``: train mode, a fixed random projection of the four maps
    backpropagated), every path in ``impls`` (the first is the baseline) is timed (median of ``iters`` after
    ``warmup``, CUDA synchronised) and its peak memory taken (CUDA: growth of ``max_memory_allocated`` over one
    pass; elsewhere ``None``). ``max_rel_diff`` is the largest ``max|x - x_base| / max|x_base|`` over the four maps
    (and, for forward+backward, the input gradient) against the baseline; ``speedup`` is baseline time / this time.
    For forward+backward, ``max_param_grad_rel_diff`` is the largest ``||g - g_base|| / ||g_base||`` over the
    parameters' gradients and ``worst_param`` names that parameter. Returns one dict per (size, dtype, mode, path)
    with keys ``size, dtype, mode, attn_impl, median_ms, peak_mem_mb, max_rel_diff, speedup`` (and those two). ``device='cpu', impls=('fast', 'reference')`` runs the same code
    without a GPU.
    """
    import torch
    import mmvit_backbones  # noqa: F401
    from mmvit_backbones.api import parse_backbone_name
    cuda = device == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    models = {}
    for impl in impls:
        cls, arch_name = parse_backbone_name(f'transnext-{arch}' if isinstance(arch, str) else 'transnext-tiny')
        models[impl] = cls(arch=arch if isinstance(arch, dict) else arch_name, attn_impl=impl).to(device)
        models[impl].load_state_dict(models[impls[0]].state_dict())
    rows = []
    for h, w in sizes:
        x = torch.randn(batch, 3, h, w, device=device)
        for dtype_name in dtypes:
            dtype = getattr(torch, dtype_name)
            for mode in modes:
                train = mode != 'forward'
                base, projections = None, None
                for impl in impls:
                    model = models[impl].train(train)
                    inp = x.clone().requires_grad_(train)

                    def step():
                        nonlocal projections
                        model.zero_grad(set_to_none=True)
                        inp.grad = None
                        with torch.set_grad_enabled(train), \
                                torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
                            outs = model(inp)
                        if train:
                            if projections is None:
                                gen = torch.Generator(device=device).manual_seed(1)
                                projections = [torch.randn(o.shape, device=device, generator=gen) for o in outs]
                            sum((o.float() * p).sum() for o, p in zip(outs, projections)).backward()
                            return [o.detach().float() for o in outs] + [inp.grad.float()]
                        return [o.float() for o in outs]

                    for _ in range(warmup):
                        step()
                    sync()
                    if cuda:
                        torch.cuda.reset_peak_memory_stats()
                        start_mem = torch.cuda.memory_allocated()
                    results = step()
                    sync()
                    peak = (torch.cuda.max_memory_allocated() - start_mem) / 2 ** 20 if cuda else None
                    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).float()
                             for n, p in model.named_parameters()} if train else {}
                    times = []
                    for _ in range(iters):
                        sync()
                        start = time.perf_counter()
                        step()
                        sync()
                        times.append(time.perf_counter() - start)
                    model.zero_grad(set_to_none=True)
                    times.sort()
                    median = times[len(times) // 2]
                    if base is None:
                        base = (results, median, grads)
                    diff = max(((r - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
                               for r, b in zip(results, base[0]))
                    rows.append(dict(size=f'{h}x{w}', dtype=dtype_name, mode=mode, attn_impl=impl,
                                     median_ms=round(median * 1000, 2),
                                     peak_mem_mb=None if peak is None else round(peak, 1),
                                     max_rel_diff=diff, speedup=round(base[1] / median, 3),
                                     **_worst_grad_diff(grads, base[2])))
                    print(rows[-1], flush=True)
    return rows


def _worst_grad_diff(grads: dict, base: dict) -> dict:
    """The parameter whose gradient differs most from the baseline's, as ``||g - g_base|| / ||g_base||`` (a
    parameter with no gradient on one path counts as zeros); empty for a forward pass. The denominator is at least
    1e-3 of the largest baseline gradient norm: some gradients are zero in exact arithmetic (a bias added to every
    logit of a softmax row) and differ between paths only by rounding."""
    if not grads:
        return {}
    import torch
    floor = 1e-3 * max(g.norm() for g in base.values()).clamp_min(1e-30)
    diffs = {n: ((g - base[n]).norm() / torch.maximum(base[n].norm(), floor)).item() for n, g in grads.items()}
    worst = max(diffs, key=diffs.get, default=None)
    return dict(max_param_grad_rel_diff=diffs.get(worst, 0.0), worst_param=worst)


def _format_row(row: dict) -> str:
    how = 'compiled' if row.get('compiled') else 'eager'
    if 'error' in row:
        return f"{row['model']:<22} {row['size']:>9} {row['mode']:<17} {how:<8} ERROR {row['error']}"
    extra = f"  (compile {row['compile_s']:.1f} s)" if row.get('compiled') else ''
    return (f"{row['model']:<22} {row['size']:>9} {row['mode']:<17} {how:<8} {row['images_per_s']:>8.3f} img/s "
            f"{row['median_s'] * 1000:>9.1f} ms  {row['peak_mem_mb']:>8.1f} MB{extra}")


def to_markdown(result: dict) -> str:
    m = result['machine']
    where = m.get('gpu') or f"{m['cpu']} ({m['threads']} threads)"
    lines = [f"Machine: {where}; torch {m['torch']}; batch {result['batch']}, median of {result['iters']} iters.",
             '', '| model | size | mode | params (M) | img/s | ms / iter | peak mem (MB) |',
             '|---|---|---|---|---|---|---|']
    if any(r.get('compiled') for r in result['rows']):
        return '\n'.join(lines[:2] + [compile_table(result['rows'])])
    for r in result['rows']:
        if 'error' in r:
            lines.append(f"| {r['model']} | {r['size']} | {r['mode']} | - | error | - | - |")
        else:
            lines.append(f"| {r['model']} | {r['size']} | {r['mode']} | {r['params_m']} | {r['images_per_s']} | "
                         f"{r['median_s'] * 1000:.1f} | {r['peak_mem_mb']} |")
    return '\n'.join(lines)


def compile_table(rows: list) -> str:
    """Eager and compiled rows of the same case side by side, with the speed-up (eager / compiled time)."""
    lines = ['| model | size | mode | eager ms | compiled ms | speed-up | compile s | eager MB | compiled MB |',
             '|---|---|---|---|---|---|---|---|---|']
    cases = {}
    for r in rows:
        cases.setdefault((r['model'], r['size'], r['mode']), {})['compiled' if r.get('compiled') else 'eager'] = r
    for (model, size, mode), pair in cases.items():
        eager, comp = pair.get('eager', {}), pair.get('compiled', {})

        def ms(r):
            return f"{r['median_s'] * 1000:.1f}" if 'median_s' in r else ('error' if r else '-')

        speedup = f"{eager['median_s'] / comp['median_s']:.2f}x" if 'median_s' in eager and 'median_s' in comp else '-'
        lines.append(f"| {model} | {size} | {mode} | {ms(eager)} | {ms(comp)} | {speedup} | "
                     f"{comp.get('compile_s', '-')} | {eager.get('peak_mem_mb', '-')} | "
                     f"{comp.get('peak_mem_mb', '-')} |")
    errors = [f"{r['model']} {r['size']} {r['mode']} ({'compiled' if r.get('compiled') else 'eager'}): {r['error']}"
              for r in rows if 'error' in r]
    return '\n'.join(lines + ([''] + ['errors:'] + errors if errors else []))


if __name__ == '__main__':
    main()
