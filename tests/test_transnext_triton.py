"""TransNeXt's Triton aggregated-attention kernel against the reference path, on CPU in Triton's interpreter.

The kernel runs in ``TRITON_INTERPRET=1`` mode (Triton >= 3; ``requirements/tests.txt``), which executes each
program with NumPy: slow, so the shapes are small. They cover a map whose side is not a multiple of the query
block (64 queries in the interpreter), batch 0, batch > 1, a 1x1 pooled map, head dim 24 (padded to 32 in the kernel),
a position bias with four taps per output (interpolation mode) and a whole model's training step.
Where no GPU is present the CUDA case skips; where ``triton`` is missing or too old for a CPU interpreter
(torch 2.1's bundled Triton 2.1 interprets on CUDA tensors only) the interpreter cases skip with that reason.
"""
import logging
import os
import subprocess
import sys

import pytest
import torch
from mmengine.logging import MMLogger
from test_transnext_ops import _inputs

from mmvit_backbones.models.backbones.transnext import TransNeXt
from mmvit_backbones.ops import aggregated_attention as aa
from mmvit_backbones.ops.log_cpb import PoolBias, bias_geometry, evaluate_cpb


# Triton decides at import whether its own library functions (tl.zeros, ...) are interpreted, so the
# interpreter must be on before triton is first imported (importing torch._dynamo imports it): the cases below
# run in a child process started with TRITON_INTERPRET=1, or directly in a session started with it
INTERPRETED = os.environ.get('TRITON_INTERPRET', '0') == '1'


def _interpreter_missing():
    usable, why = aa.triton_status()
    if not usable:
        return f'{why}; the interpreter tests need triton >= 3.0 (pip install -r requirements/tests.txt)'
    import triton
    if int(triton.__version__.split('.')[0]) < 3:
        return (f'triton {triton.__version__} has no CPU interpreter (its interpret mode runs on CUDA tensors '
                f'only); the interpreter tests need triton >= 3.0')
    return None


MISSING = _interpreter_missing()
interpreted = pytest.mark.skipif(
    MISSING is not None or not INTERPRETED,
    reason=MISSING or 'run by test_triton_cases_in_a_fresh_interpreter_process (TRITON_INTERPRET=1 from the start)')


@pytest.mark.skipif(MISSING is not None or INTERPRETED, reason=MISSING or 'this session is the interpreter one')
def test_triton_cases_in_a_fresh_interpreter_process():
    """Runs this file's ``interpreted`` cases in a child process with ``TRITON_INTERPRET=1`` set before any import."""
    env = dict(os.environ, TRITON_INTERPRET='1', OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-k', 'interpreted',
                           os.path.abspath(__file__)], capture_output=True, text=True, env=env,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ''
    assert proc.returncode == 0 and 'passed' in summary and 'skipped' not in summary, proc.stdout[-4000:]


def _grads_of(impl, tensors, bias, size, pool):
    out = aa.aggregated_attention(**tensors, size=size, pool_size=pool, padding_mask=aa.local_padding_mask(size),
                                  pool_bias=bias(), impl=impl)
    weights = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * weights).sum().backward()
    leaves = dict(tensors, **bias.leaves)
    grads = {k: v.grad.clone() for k, v in leaves.items()}
    for v in leaves.values():
        v.grad = None
    return out.detach(), grads


class DenseBias:
    """A whole ``(heads, H, W, kh, kw)`` bias as the kernel's table (one tap per output)."""

    def __init__(self, bias):
        self.leaves = {'bias': bias}

    def __call__(self):
        return PoolBias.from_dense(self.leaves['bias'])


class CpbBias:
    """The log-CPB bias of a real geometry (interpolation mode: up to four taps per output)."""

    def __init__(self, size, pool, heads, table, dtype=torch.float32):
        torch.manual_seed(1)
        self.fc1, self.fc2 = torch.nn.Linear(2, 64), torch.nn.Linear(64, heads)
        self.geometry = bias_geometry(size, pool, 14, table, size[0] // pool[0], torch.device('cpu'))
        self.leaves = {'cpb_fc2.weight': self.fc2.weight}

    def __call__(self):
        return PoolBias(evaluate_cpb(self.fc1, self.fc2, self.geometry), self.geometry)


def _compare(tensors, bias, size, pool, rtol, atol):
    ref_out, ref_grads = _grads_of('reference', tensors, bias, size, pool)
    out, grads = _grads_of('triton', tensors, bias, size, pool)
    assert out.dtype == ref_out.dtype
    torch.testing.assert_close(out.float(), ref_out.float(), rtol=rtol, atol=atol)
    for k, ref in ref_grads.items():
        scale = (ref.float().abs().max().item() if ref.numel() else 0.0) or 1.0
        torch.testing.assert_close(grads[k].float(), ref.float(), rtol=rtol, atol=atol * scale, msg=k)


# (size, pool, batch, head dim): 70 queries, no multiple of the 64-query block; a 1x1 pooled map; batch 0;
# head dim 24 (padded to 32 inside the kernel)
@interpreted
@pytest.mark.parametrize('size,pool,b,d', [((7, 10), (2, 3), 2, 8), ((1, 5), (1, 1), 1, 8),
                                           ((5, 6), (2, 2), 0, 8), ((6, 5), (3, 2), 1, 24)])
def test_interpreted_matches_reference_fp32(size, pool, b, d):
    tensors, bias = _inputs(b=b, h=2, d=d, size=size, pool=pool)
    _compare(tensors, DenseBias(bias), size, pool, rtol=1e-5, atol=1e-5)


@interpreted
def test_interpreted_position_bias_from_log_cpb_table():
    """The bias gathered inside the kernel from the log-CPB table (four taps per output), and the gradient
    that reaches the bias MLP through it."""
    size, pool = (9, 13), (4, 6)
    tensors, _ = _inputs(b=1, h=2, size=size, pool=pool)
    _compare(tensors, CpbBias(size, pool, 2, table=16), size, pool, rtol=1e-5, atol=1e-5)


# bf16/fp16 inputs: both paths compute in float32 from the same rounded inputs; what differs is the rounding
# of the outputs and gradients to the input dtype (one ulp: 2^-8 bf16, 2^-11 fp16) and float32 summation order
@interpreted
@pytest.mark.parametrize('dtype,tol', [(torch.bfloat16, 1e-2), (torch.float16, 2e-3)])
def test_interpreted_low_precision_inputs(dtype, tol):
    tensors, bias = _inputs(b=2, h=2, size=(5, 7), pool=(2, 2), dtype=dtype)
    _compare(tensors, DenseBias(bias), (5, 7), (2, 2), rtol=tol, atol=tol)


@interpreted
def test_interpreted_training_step_of_a_model():
    """A small TransNeXt with ``attn_impl='triton'`` () and with ``'fast'``: same state-dict keys, same
    features and the same gradient for every parameter."""
    arch = dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4))
    torch.manual_seed(0)
    fast = TransNeXt(arch=arch, img_size=64, attn_impl='fast')
    fast.init_weights()
    tri = TransNeXt(arch=arch, img_size=64, attn_impl='triton')
    assert list(tri.state_dict()) == list(fast.state_dict())
    tri.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, 40, 56)
    grads = []
    for model in (fast, tri):
        outs = model(x)
        sum((o * torch.linspace(-1, 1, o.numel()).view(o.shape)).sum() for o in outs).backward()
        grads.append(({k: p.grad for k, p in model.named_parameters()}, [o.detach() for o in outs]))
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    for k, ref in grads[0][0].items():
        # stage 4's cpb_fc2.bias shifts all of a softmax's logits alike: its gradient is zero up to rounding
        floor = 1e-6 if k.startswith('block4') and k.endswith('cpb_fc2.bias') else 0.0
        torch.testing.assert_close(grads[1][0][k], ref, rtol=1e-4, atol=max(1e-5 * ref.abs().max().item(), floor),
                                   msg=k)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_triton_on_cuda_matches_reference():
    if not aa.triton_status()[0]:
        pytest.skip(aa.triton_status()[1])
    tensors, bias = _inputs(b=2, h=3, d=24, size=(37, 45), pool=(4, 5))
    tensors = {k: v.detach().cuda().requires_grad_() for k, v in tensors.items()}
    _compare(tensors, DenseBias(bias.detach().cuda().requires_grad_()), (37, 45), (4, 5), rtol=1e-4, atol=1e-5)


def test_auto_picks_triton_on_cuda_only(monkeypatch):
    """``'auto'`` is the PyTorch path on CPU, the Triton kernel on CUDA with a usable triton (logged once, INFO)."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    monkeypatch.setattr(aa, '_LOGGED', set())
    try:
        assert aa.resolve_impl('auto', torch.device('cpu')) == 'fast'
        monkeypatch.setattr(aa, 'triton_status', lambda: (True, 'triton 9.9'))
        assert aa.resolve_impl('auto', torch.device('cuda')) == 'triton'
        assert aa.resolve_impl('auto', torch.device('cuda')) == 'triton'
        monkeypatch.setattr(aa, 'triton_status', lambda: (False, 'triton is not importable'))
        assert aa.resolve_impl('auto', torch.device('cuda')) == 'fast'
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records if r.levelno == logging.INFO]
    assert len([m for m in messages if "attn_impl='triton'" in m]) == 1, messages
    assert any("on cpu: PyTorch blocked path" in m for m in messages), messages
    assert aa.resolve_impl('reference', torch.device('cuda')) == 'reference'


def test_package_imports_and_runs_without_triton():
    """``import mmvit_backbones`` never imports triton itself: with triton made unimportable the package
    imports, TransNeXt runs on CPU, and the Triton path reports why it is unavailable."""
    code = '''
import sys
class NoTriton:
    def find_spec(self, name, path=None, target=None):
        if name == 'triton' or name.startswith('triton.'):
            raise ImportError('triton blocked for this test')
sys.meta_path.insert(0, NoTriton())
import torch, mmvit_backbones
from mmvit_backbones.ops import aggregated_attention as aa
from mmvit_backbones.models.backbones.transnext import TransNeXt
m = TransNeXt(arch=dict(embed_dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)), img_size=64)
m(torch.randn(1, 3, 32, 32))[0].sum().backward()
usable, why = aa.triton_status()
assert not usable and 'blocked' in why, why
print('ok')
'''
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith('ok'), proc.stderr[-2000:]


def test_triton_needs_a_pool_bias_table():
    tensors, bias = _inputs(b=1, size=(3, 4), pool=(1, 2))
    if not aa.triton_status()[0]:
        pytest.skip(aa.triton_status()[1])
    with pytest.raises((TypeError, RuntimeError), match='triton'):
        aa.aggregated_attention(**tensors, size=(3, 4), pool_size=(1, 2), padding_mask=aa.local_padding_mask((3, 4)),
                                pool_bias=lambda r0, r1: bias[:, r0:r1], impl='triton')

