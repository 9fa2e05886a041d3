"""Where the faster paths run, decided in one place. :func:`use_reference` is the one switch to every operator's
readable reference path (as timm's ``fused_attn``): ``MMVIT_REFERENCE=1`` or ``with reference_paths():``.
:func:`cpu_fast_path` gates the CPU-only tricks (oneDNN fused linears, space-to-depth convolutions, chunk loops):
on CUDA, ``meta`` and under graph capture the whole-tensor path runs."""
import contextlib
import os
from typing import Iterator, Tuple

import torch

from .tracing import is_capturing

_REFERENCE = [os.environ.get('MMVIT_REFERENCE', '0') not in ('', '0')]


def use_reference() -> bool:
    """True when the reference paths are requested (see the module docstring)."""
    return _REFERENCE[0]


@contextlib.contextmanager
def reference_paths(enabled: bool = True) -> Iterator[None]:
    """Run the reference paths inside the ``with`` block."""
    previous, _REFERENCE[0] = _REFERENCE[0], bool(enabled)
    try:
        yield
    finally:
        _REFERENCE[0] = previous


def cpu_fast_path(x: torch.Tensor) -> bool:
    """Whether a CPU-only fast path may run on ``x``: a CPU tensor, eager mode, reference not requested."""
    return x.device.type == 'cpu' and not use_reference() and not is_capturing()


def chunked_inference(x: torch.Tensor, length: int, chunk: int) -> bool:
    """Whether ``length`` items of ``x`` are computed in chunks (less peak memory): eager CPU inference, > 1 chunk."""
    return length > chunk and not torch.is_grad_enabled() and cpu_fast_path(x)


def chunks(length: int, size: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``size`` covering ``range(length)``: the one chunking rule."""
    for start in range(0, length, size):
        yield start, min(start + size, length)
