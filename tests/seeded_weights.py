"""Deterministic stand-in weights for a list of ``(key, shape, dtype)``: the same numbers on every machine and
torch version (integer hashing, no RNG), so a file written here and a model of another library loaded with
the same tensors can be compared through small committed summaries (``tests/fixtures/*/timm_*``).

The values are scaled by what a key names, so that a forward pass through a whole network stays finite
and non-trivial: matrices/convolutions keep unit variance (uniform in +-sqrt(3 / fan_in)), norm weights are
near 1, biases and position tables small, BatchNorm running variances positive.
"""
import json
import math
import os
import zlib
from typing import Dict, List, Sequence, Tuple

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
_MOD = 2147483648  # 2**31; every product below stays under 2**63


def uniform(seed_text: str, numel: int) -> torch.Tensor:
    """``numel`` float64 numbers in [-1, 1), a pure function of ``seed_text`` (two rounds of an LCG on the
    element index, exact integer arithmetic)."""
    seed = zlib.crc32(seed_text.encode())
    x = (torch.arange(numel, dtype=torch.int64) * 1103515245 + seed) % _MOD
    x = (x * 1103515245 + 12345) % _MOD
    x = (x ^ (x >> 13)) * 69069 % _MOD
    return x.to(torch.float64) / _MOD * 2 - 1


def seeded_tensor(key: str, shape: Sequence[int], dtype: str = 'float32') -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    if dtype.startswith('int'):  # BatchNorm's num_batches_tracked
        return torch.zeros(shape, dtype=getattr(torch, dtype))
    u = uniform(key, math.prod(shape)).reshape(shape)
    name = key.rsplit('.', 1)[-1]
    if name == 'running_var':
        value = 1 + 0.5 * u.abs()
    elif name == 'running_mean':
        value = 0.1 * u
    elif name == 'bias':
        value = 0.05 * u
    elif name.startswith('gamma') or key.endswith('.gamma'):  # layer scale (XCiT gamma1-3, timm ls*.gamma)
        value = 0.5 + 0.25 * u
    elif name == 'temperature':  # XCiT's per-head temperature
        value = 1 + 0.1 * u
    elif 'relative_position_bias_table' in name or name in ('cls_token', 'dist_token'):
        value = 0.1 * u
    elif len(shape) == 1:  # LayerNorm / BatchNorm weight
        value = 1 + 0.1 * u
    else:
        value = u * math.sqrt(3.0 / max(1, math.prod(shape[1:])))
    return value.to(getattr(torch, dtype))


def seeded_state_dict(keys: List[Sequence]) -> Dict[str, torch.Tensor]:
    """``[[key, shape, dtype], ...]`` (a key fixture's ``keys``) -> a state dict of seeded tensors."""
    return {key: seeded_tensor(key, shape, *rest) for key, shape, *rest in keys}


def seeded_input(height: int, width: int) -> torch.Tensor:
    """The input image of the cross-checks: ``(1, 3, H, W)`` in [-1.5, 1.5)."""
    return (1.5 * uniform(f'input-{height}x{width}', 3 * height * width)).reshape(1, 3, height, width).float()


def load_key_fixture(family: str, name: str) -> dict:
    with open(os.path.join(FIXTURES, family, name)) as f:
        return json.load(f)


def summarize(feature: torch.Tensor, samples: int = 16) -> dict:
    """A few numbers that pin down an NCHW map: shape, mean, std, mean |x| and ``samples`` values at fixed
    flat positions (first, last and evenly spaced)."""
    flat = feature.detach().double().flatten()
    positions = torch.linspace(0, flat.numel() - 1, samples).round().long()
    return dict(shape=list(feature.shape), mean=flat.mean().item(), std=flat.std().item(),
                abs_mean=flat.abs().mean().item(), positions=positions.tolist(),
                values=flat[positions].tolist())


def summary_tolerance(expected: dict) -> Tuple[float, float]:
    """(rtol, atol) for comparing a map with its summary: float32 rounding through a deep network, relative
    to the map's spread."""
    return 1e-4, 2e-4 * expected['std']
