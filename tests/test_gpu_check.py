"""tools/gpu_check.py on the CPU: the no-GPU answer, argument parsing, the per-family and compile loops on
tiny archs (hidden ``--device cpu``), and the JSON/markdown report. The GPU run itself is never run by CI."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from backbone_checks import TINY_ARCHS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'gpu_check.py')
_spec = importlib.util.spec_from_file_location('gpu_check', TOOL)
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)
gpu_check_load_tool = gpu_check.load_tool  # before any monkeypatch

TINY_SPECS = [f'{name}:{json.dumps(arch)}' for name, arch in sorted(TINY_ARCHS.items())]
CPU_ARGS = ['--device', 'cpu', '--compile-backend', 'eager', '--batch', '1', '--iters', '1', '--warmup', '0']


@pytest.mark.skipif(torch.cuda.is_available(), reason='the no-GPU answer needs a machine without CUDA')
def test_without_cuda_it_exits_at_once_with_one_line():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, '-X', 'importtime', TOOL], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == gpu_check.NO_CUDA_EXIT
    messages = [line for line in proc.stderr.splitlines() if not line.startswith('import time:')]
    assert messages == ['gpu_check: no CUDA device here (torch.cuda.is_available() is False); this check needs '
                        'one GPU'], messages
    imported = {line.rsplit('|', 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith('import time:')}
    assert 'torch' in imported and not imported & {'mmengine', 'mmvit_backbones', 'mmdet', 'mmseg'}
    assert proc.stdout == ''


def test_arguments():
    args = gpu_check.parse_args([])
    assert args.models == gpu_check.DEFAULT_MODELS and len({m.split(':')[0] for m in args.models}) == 6
    assert args.sizes == [(512, 512), (800, 1216)] and args.batch == 2 and args.device == 'cuda'
    assert args.sections == list(gpu_check.SECTIONS) and len(args.compile_sizes) == 3
    assert gpu_check.parse_model('XCiT:{"depth": 4}') == ('XCiT', {'depth': 4})
    assert gpu_check.parse_model('GCViT:tiny') == ('GCViT', 'tiny')
    with pytest.raises(ValueError, match="model 'GCViT' is not TYPE:ARCH"):
        gpu_check.parse_model('GCViT')
    for bad in (['--sizes', '512'], ['--compile-sizes', '64x64'], ['--sections', 'nothing']):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)
    proc = subprocess.run([sys.executable, TOOL, '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'benchmarks/gpu.json' in proc.stdout
    assert '--device' not in proc.stdout and '--compile-backend' not in proc.stdout  # test-only switches


def test_family_and_compile_loops_on_cpu_write_the_report(tmp_path, monkeypatch):
    out = str(tmp_path / 'gpu.json')
    calls = []

    def compare_transnext_paths(**kwargs):  # tools/benchmark.py's, timed on a GPU only
        calls.append(kwargs)
        return [dict(size='64x80', dtype='float32', mode='forward', attn_impl=impl, median_ms=1.0, peak_mem_mb=None,
                     max_rel_diff=0.0, speedup=1.0) for impl in kwargs['impls']]

    monkeypatch.setattr(gpu_check, 'load_tool', lambda name: SimpleNamespace(
        compare_transnext_paths=compare_transnext_paths))
    code = gpu_check.main(CPU_ARGS + ['--sections', 'families', 'transnext_kernels', '--models', *TINY_SPECS,
                                      '--sizes', '64x80', '--out', out])
    assert code == 0
    with open(out) as f:
        report = json.load(f)
    assert report['environment']['torch'] == torch.__version__ and report['environment']['device'] == 'cpu'
    rows = report['families']
    assert [r['model'] for r in rows] == [f'{name}:custom' for name in sorted(TINY_ARCHS)]
    for row in rows:
        assert row['ok'] and row['size'] == '64x80' and row['forward_ms'] > 0 and row['forward_backward_ms'] > 0
        assert set(row['amp']) == {'float16', 'bfloat16'} and 'unsupported' not in row['amp']['bfloat16']
        assert all(a['loss_finite'] and a['grads_finite'] and a['finite'] for a in row['amp'].values()
                   if 'unsupported' not in a)  # CPU float16 autocast: torch >= 2.3
    assert calls == [dict(sizes=((64, 80),), impls=('fast', 'reference'), batch=1, iters=1, warmup=0, device='cpu')]
    assert report['transnext_kernels']['ok'] and len(report['transnext_kernels']['rows']) == 2
    assert callable(gpu_check_load_tool('benchmark').compare_transnext_paths)  # the function the GPU run calls
    with open(osp.join(tmp_path, 'gpu.md')) as f:
        markdown = f.read()
    assert markdown.count('| XCiT:custom | 64x80 |') == 1 and len(markdown.splitlines()) >= 10

    code = gpu_check.main(CPU_ARGS + ['--sections', 'compile', '--models', TINY_SPECS[-1],  # XCiT, the quickest
                                      '--compile-sizes', '64x64', '64x96', '96x128', '--out', out])
    assert code == 0
    with open(out) as f:
        row, = json.load(f)['compile']
    assert row['graphs_first_size'] >= 1 and row['graph_breaks'] >= 0 and len(row['new_graphs_per_size']) == 2
    assert row['recompiles'] == sum(row['new_graphs_per_size']) > 0 and row['speedup'] > 0


def test_failures_budget_and_markdown_of_a_report(tmp_path):
    args = gpu_check.parse_args(CPU_ARGS + ['--sections', 'families', '--models', TINY_SPECS[0], '--budget-min', '0',
                                            '--out', str(tmp_path / 'partial.json')])
    report = gpu_check.run_checks(args)  # the budget is spent before the first item
    assert (tmp_path / 'partial.json').is_file() and (tmp_path / 'partial.md').is_file()  # saved before each item
    assert report['families'] == [] and report['skipped'] == [f'families {TINY_SPECS[0].split(":")[0]}:custom 512x512',
                                                              f'families {TINY_SPECS[0].split(":")[0]}:custom 800x1216']
    report.update(families=[dict(model='GCViT:tiny', size='512x512', ok=False, error='RuntimeError: CUDA oom')],
                  compile=[dict(model='XCiT:small-12-p16', ok=False, error='BackendCompilerFailed: x')],
                  resume=dict(ok=False, error='RuntimeError: crashed'), demo=[dict(config='c.py', ok=True)])
    assert gpu_check.failures(report) == ['families GCViT:tiny 512x512', 'compile XCiT:small-12-p16', 'resume']
    markdown_path = gpu_check.write_report(report, str(tmp_path / 'sub' / 'gpu.json'))
    with open(markdown_path) as f:
        markdown = f.read()
    assert '| GCViT:tiny | 512x512 | error: RuntimeError: CUDA oom |' in markdown
    assert 'Resume after SIGKILL' in markdown and 'Skipped (time budget)' in markdown
    with open(tmp_path / 'sub' / 'gpu.json') as f:
        assert json.load(f)['resume']['error'] == 'RuntimeError: crashed'


def test_worst_parameter_gradient_difference():
    """The kernel comparison's gradient check: a wrong gradient is found and named; a gradient that is zero in
    exact arithmetic (rounding noise on both paths) is measured against the largest gradient, not against itself."""
    worst = gpu_check_load_tool('benchmark')._worst_grad_diff
    base = dict(w=torch.tensor([3.0, 4.0]), zero_in_theory=torch.tensor([1e-9, -1e-9]))
    noisy = dict(w=torch.tensor([3.0, 4.0]), zero_in_theory=torch.tensor([-2e-9, 1e-9]))
    assert worst(noisy, base)['max_param_grad_rel_diff'] < 1e-6
    wrong = dict(w=torch.tensor([3.0, 0.0]), zero_in_theory=base['zero_in_theory'])
    assert worst(wrong, base) == dict(max_param_grad_rel_diff=pytest.approx(0.8), worst_param='w')
    assert worst({}, {}) == {}
