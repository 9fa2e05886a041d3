"""Reusable checks of the CONTRACT every family must satisfy; family test files call these.

Each check takes a ``build`` callable (``**overrides -> backbone``) so families can pass a reduced
depth arch for speed, and explicit expectations (channels), so a broken model fails loudly.
"""
import math
from typing import Callable, Sequence

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.registry import MODELS as ROOT_MODELS

STRIDES = (4, 8, 16, 32)


# The smallest arch of each family that keeps every kind of block it has (tests that only need the code path).
TINY_ARCHS = {
    'GCViT': dict(embed_dims=8, depths=(2, 1, 1, 1), num_heads=(1, 1, 2, 2), mlp_ratio=2, layer_scale=1e-5),
    'TwinsPCPVT': dict(embed_dims=(8, 16, 16, 16), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                       mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1)),
    'TwinsSVT': dict(embed_dims=(8, 16, 16, 16), depths=(2, 1, 1, 1), num_heads=(1, 1, 1, 1),
                     mlp_ratios=(2, 2, 2, 2), sr_ratios=(8, 4, 2, 1), window_sizes=(7, 7, 7, 7),
                     norm_after_stage=True),
    'CrossFormer': dict(embed_dims=16, depths=(2, 1, 1, 1), num_heads=(1, 1, 1, 1)),
    'XCiT': dict(embed_dims=16, depth=4, num_heads=1, patch_size=16, tap_blocks=(0, 1, 2, 3)),
    'TransNeXt': dict(embed_dims=(8, 16, 16, 16), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1)),
}


def build_in_scope(scope: str, cfg: dict):
    """Build ``cfg`` from the registry of ``scope`` ('mmdet' or 'mmseg'), as a config would."""
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        import mmdet.models  # noqa: F401
    else:
        from mmseg.registry import MODELS
        import mmseg.models  # noqa: F401
    name = f'test-{scope}-{id(cfg)}'
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(dict(cfg)), name


def check_registry(type_name: str, arch_cfg):
    """The type is in the root registry and resolves to the same class from mmdet and mmseg scopes."""
    cls = ROOT_MODELS.get(type_name)
    assert cls is not None, f'{type_name} not in the root MODELS registry'
    for scope in ('mmdet', 'mmseg'):
        model, _ = build_in_scope(scope, dict(type=type_name, arch=arch_cfg))
        assert type(model) is cls, f'{scope} scope resolved {type_name} to {type(model)} instead of {cls}'


def check_outputs(model, sizes: Sequence[tuple], channels: Sequence[int], out_indices=(0, 1, 2, 3)):
    """Tuple of NCHW maps at strides 4/8/16/32, ``ceil(H/s)`` x ``ceil(W/s)``, with the given channels."""
    model.eval()
    for h, w in sizes:
        with torch.no_grad():
            outs = model(torch.randn(1, model.in_channels, h, w))
        assert isinstance(outs, tuple) and len(outs) == len(out_indices)
        for i, out in zip(out_indices, outs):
            s = STRIDES[i]
            expected = (1, channels[i], math.ceil(h / s), math.ceil(w / s))
            assert tuple(out.shape) == expected, f'input {(h, w)} stage {i}: {tuple(out.shape)} != {expected}'
            assert torch.isfinite(out).all()


def check_frozen_stages(build: Callable, num_stages: int = 4):
    """frozen_stages=k: stem and stages < k have no grad from the moment the backbone is built (so the
    trainable set is fixed before DDP wraps it) and stay in eval mode after .train()."""
    for k in range(-1, num_stages + 1):
        model = build(frozen_stages=k)
        frozen = set()
        modules = []
        if k >= 0:
            modules += list(model.stem_modules())
            for i in range(k):
                modules += list(model.stage_modules(i))
        for m in modules:
            frozen |= {id(p) for p in m.parameters()}
        for p in model.parameters():  # right after build
            assert p.requires_grad == (id(p) not in frozen)
        model.train()
        assert all(not m.training for m in modules)
        for p in model.parameters():
            assert p.requires_grad == (id(p) not in frozen)
    with pytest.raises(ValueError, match='frozen_stages'):
        build(frozen_stages=num_stages + 1)


def projection_loss(outs, seed: int = 0) -> torch.Tensor:
    """Sum of each map projected on a fixed random tensor (seeded; the same for equal shapes). A loss such as
    mean(o ** 2) or sum(o) of normalised maps is nearly constant: every gradient before the last norms would be
    rounding noise that any tolerance accepts."""
    gen = torch.Generator().manual_seed(seed)
    return sum((o.float() * torch.randn(o.shape, generator=gen)).sum() for o in outs)


def check_with_cp(build: Callable, size=(64, 96)):
    """with_cp gives the same outputs and gradients as the plain path (non-reentrant checkpointing)."""
    torch.manual_seed(0)
    ref = build(with_cp=False)
    cp = build(with_cp=True)
    cp.load_state_dict(ref.state_dict())
    ref.train()
    cp.train()
    x = torch.randn(2, ref.in_channels, *size)
    grads = []
    for model in (ref, cp):
        torch.manual_seed(1)  # same drop-path draws
        outs = model(x)
        projection_loss(outs, seed=2).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    first = next(iter(grads[0].values()))  # the stem's first parameter: far from the loss
    assert float(first.abs().max()) > 1e-3, 'with_cp check: the gradient reaching the stem is vanishing noise'
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5, msg=name)


def check_norm_eval(build: Callable):
    """norm_eval keeps every BatchNorm in eval mode while the rest trains."""
    model = build(norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(not m.training for m in bns)
    assert model.training


def check_drop_path(build: Callable, size=(64, 64)):
    """drop_path_rate > 0 makes training forwards stochastic and eval forwards deterministic."""
    model = build(drop_path_rate=0.5)
    x = torch.randn(2, model.in_channels, *size)
    model.train()
    torch.manual_seed(1)
    a = model(x)[-1]
    torch.manual_seed(2)
    b = model(x)[-1]
    assert not torch.allclose(a, b), 'drop_path_rate had no effect in training'
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], model(x)[-1])
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == 'DropPath']
    assert rates and max(rates) > 0, 'no DropPath module carries the rate'


def check_bad_inputs(type_name: str, arch_cfg):
    """Clear errors naming the offending value."""
    with pytest.raises(ValueError, match='unknown arch'):
        ROOT_MODELS.build(dict(type=type_name, arch='no-such-arch'))
    with pytest.raises(ValueError, match='out_indices'):
        ROOT_MODELS.build(dict(type=type_name, arch=arch_cfg, out_indices=(0, 7)))
    with pytest.raises(ValueError, match='frozen_stages'):
        ROOT_MODELS.build(dict(type=type_name, arch=arch_cfg, frozen_stages=9))
    model = ROOT_MODELS.build(dict(type=type_name, arch=arch_cfg))
    with pytest.raises(ValueError, match='channels'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='minimum'):
        model(torch.randn(1, 3, 16, 64))


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
