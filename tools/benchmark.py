"""Backbone throughput and peak memory: forward and forward+backward, per family / arch / input size.

    python tools/benchmark.py                                  # each family's default variant, 512x512 and 800x1216
    python tools/benchmark.py --models TwinsPCPVT:small GCViT:tiny --sizes 224x224 --batch 2 --iters 10
    python tools/benchmark.py --out benchmarks/cpu.json --device cpu --threads 2
    python tools/benchmark.py --compile --sizes 512x512 --modes forward   # eager vs torch.compile side by side

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

DEFAULT_MODELS = ['TwinsPCPVT:small', 'TwinsSVT:small', 'GCViT:tiny', 'CrossFormer:small', 'XCiT:small-12-p16',
                  'TransNeXt:tiny']


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


def run_case(model_spec: str, size: str, mode: str, batch: int, iters: int, warmup: int, device: str,
             compile_mode: str = None, freezing: bool = True) -> dict:
    """One measurement, in this process (called in a fresh subprocess by :func:`main`).

    ``compile_mode`` (``'default'``, ``'reduce-overhead'``, ``'max-autotune'``) runs the model through
    ``torch.compile(fullgraph=True, dynamic=False)``; the first warm-up pass compiles (timed as ``compile_s``).
    ``freezing`` applies to forward (inference) cases only.
    """
    import torch
    from mmengine.registry import MODELS

    import mmvit_backbones  # noqa: F401
    type_name, arch = model_spec.split(':', 1)
    h, w = (int(v) for v in size.lower().split('x'))
    model = MODELS.build(dict(type=type_name, arch=arch)).to(device)
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
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if device == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss_bytes(reset) - base
    times.sort()
    median = times[len(times) // 2]
    row = dict(model=model_spec, size=f'{h}x{w}', mode=mode, batch=batch, iters=iters,
               params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
               median_s=round(median, 4), images_per_s=round(batch / median, 3),
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

    from mmengine.registry import MODELS

    import mmvit_backbones  # noqa: F401
    specs = args.models or [m for m in DEFAULT_MODELS if MODELS.get(m.split(':')[0]) is not None]
    rows = []
    for spec in specs:
        for size in args.sizes:
            for mode in args.modes:
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
