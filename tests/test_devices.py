"""Device- and dtype-clean forwards: every family runs forward and backward on the ``meta`` device.

A ``meta`` tensor has a shape and a dtype but no data, so a forward on ``meta`` inputs and weights proves three
things at once, without a GPU:

* no tensor is made on the CPU inside a forward (a constant built without ``device=`` would be; the dispatch mode
  below records the device of every operator's output, and a CPU output fails the test). On a GPU such a tensor
  is a host-to-device copy per forward, or an error;
* no host synchronisation (``.item()``, ``.tolist()``, a data-dependent branch on a tensor) happens in a forward:
  a ``meta`` tensor has no value to read, so torch raises;
* caches keyed by size only would hand a ``meta`` model the CPU tensors of an earlier CPU forward (and the
  reverse), so every model here first runs once on the CPU at the same size.

Size-only constants that must be computed on the host (TransNeXt's log-CPB offsets: ``torch.unique`` has a
data-dependent size) are built inside ``utils.tracing.host_constants()``, once per size, and copied to the device;
the recorder allows host tensors only there, and a second forward at the same size must build none at all.

The default archs are built directly on ``meta`` (``with torch.device('meta')``) and run at a detection size.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from backbone_checks import TINY_ARCHS

from mmvit_backbones import compat
from mmvit_backbones.api import parse_backbone_name
from mmvit_backbones.utils.tracing import building_host_constants
from mmengine.registry import MODELS

DEFAULT_ARCHS = {'GCViT': 'gcvit-tiny', 'TwinsPCPVT': 'twins-pcpvt-small', 'TwinsSVT': 'twins-svt-small',
                 'CrossFormer': 'crossformer-small', 'XCiT': 'xcit-small-12-p16', 'TransNeXt': 'transnext-tiny'}


class DeviceRecorder(TorchDispatchMode):
    """Records every operator whose output tensor is not on the expected device."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device
        self.strays = []
        self.host_constants = 0  # host ops inside utils.tracing.host_constants()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat = out if isinstance(out, (tuple, list)) else (out, )
        for t in flat:
            if isinstance(t, torch.Tensor) and t.device.type != self.device:
                if building_host_constants():
                    self.host_constants += 1
                else:
                    self.strays.append(f'{func} -> {t.device} {tuple(t.shape)} {t.dtype}')
        return out


def meta_backward_supported() -> bool:
    """torch 2.1 has no meta kernel for embedding_bag's backward (TransNeXt's position bias uses it)."""
    weight = torch.empty(4, 2, device='meta', requires_grad=True)
    try:
        torch.nn.functional.embedding_bag(torch.zeros(3, dtype=torch.long, device='meta'), weight,
                                          torch.zeros(1, dtype=torch.long, device='meta'), mode='sum').sum().backward()
        return True
    except NotImplementedError:
        return False


def skip_without_meta_backward(type_name: str) -> None:
    if type_name == 'TransNeXt' and not meta_backward_supported():
        pytest.skip(f"torch {torch.__version__} has no meta kernel for embedding_bag's backward (added in a newer "
                    f'torch); the eval forward on meta still runs')


def projection_loss(outs):
    return sum((o.float() * torch.ones_like(o, dtype=torch.float32)).sum() for o in outs)


def run_on_meta(model, size, dtype=torch.float32):
    """Forward + backward of ``model`` (already on meta) on a meta input, twice; returns the stray-device records
    of both (the second forward may not even build host constants: they are cached)."""
    strays = []
    for attempt in range(2):
        x = torch.empty(2, model.in_channels, *size, device='meta', dtype=dtype, requires_grad=True)
        recorder = DeviceRecorder('meta')
        with recorder:
            outs = model(x)
            projection_loss(outs).backward()
        assert all(o.device.type == 'meta' for o in outs)
        assert x.grad is not None and x.grad.shape == x.shape
        strays += recorder.strays
        if attempt == 1:
            assert recorder.host_constants == 0, f'the second forward at {size} rebuilt host constants'
    return strays, outs


@pytest.mark.parametrize('type_name', sorted(TINY_ARCHS))
def test_tiny_arch_forward_backward_on_meta(type_name):
    model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name]))
    model.init_weights()
    model.train()
    size = (100, 132)
    with torch.no_grad():  # a CPU forward first: a cache keyed by size alone would now hold CPU tensors
        model(torch.randn(1, model.in_channels, *size))
    model.to('meta')
    skip_without_meta_backward(type_name)
    strays, outs = run_on_meta(model, size)
    assert not strays, f'{type_name}: tensors made off the input device in forward/backward: {strays[:8]}'
    assert [o.shape[1] for o in outs] == list(model.out_channels)
    # eval mode takes the inference paths (fused linears, chunk loops, cached masks): same rule
    model.eval()
    recorder = DeviceRecorder('meta')
    with recorder, torch.no_grad():
        model(torch.empty(1, model.in_channels, *size, device='meta'))
    assert not recorder.strays, f'{type_name} (eval): tensors made off the input device: {recorder.strays[:8]}'


@pytest.mark.parametrize('type_name', sorted(DEFAULT_ARCHS))
def test_default_arch_built_on_meta_at_detection_size(type_name):
    cls, arch = parse_backbone_name(DEFAULT_ARCHS[type_name])
    with torch.device('meta'):  # the constructor's own init runs on meta; mmengine's init_weights reads values
        model = cls(arch=arch)
    assert all(p.device.type == 'meta' for p in model.parameters())
    skip_without_meta_backward(type_name)
    model.train()
    strays, outs = run_on_meta(model, (800, 1216))
    assert not strays, f'{type_name}: tensors made off the input device: {strays[:8]}'
    assert [tuple(o.shape[2:]) for o in outs] == [(800 // s, 1216 // s) for s in model.out_strides]


@pytest.mark.parametrize('type_name', sorted(TINY_ARCHS))
def test_bf16_weights_on_meta(type_name):
    """A model cast to bfloat16 runs in bfloat16 (masks and biases follow the dtype, not a cached float32)."""
    model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name]))
    model.init_weights()
    model.to(device='meta', dtype=torch.bfloat16)
    skip_without_meta_backward(type_name)
    strays, outs = run_on_meta(model, (96, 128), dtype=torch.bfloat16)
    assert not strays, f'{type_name}: tensors made off the input device: {strays[:8]}'
    assert all(o.dtype == torch.bfloat16 for o in outs)


def test_autocast_helpers_accept_any_device_type():
    """Autocast regions are entered on ``meta`` too (torch 2.1's ``torch.autocast`` rejects that device type)."""
    with compat.autocast_disabled('meta'):
        pass
    assert compat.autocast_enabled('meta') is False
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert compat.autocast_enabled('cpu') is True
    assert compat.autocast_enabled('cpu') is False
