"""Which kind of graph capture is running, so that eager-only shortcuts can step aside.

Eager forwards use a few shape-keyed caches and Python branches on sizes (skip a zero padding, chunk
a large map, reuse a mask). Graph capture needs the opposite:

* export (``torch.export`` / ``torch.onnx.export``, whose graphs take any size) and TorchScript
  tracing record sizes as graph values but cannot keep Python branches and loop counts on them (an
  exporter turns each into a guard that fails for other sizes), so an exported path is branch-free in
  the sizes: always pad, even by zero; no row/token chunk loops; no cached tensors of one size;
* ``torch.compile`` / ``torch.export`` (dynamo) cannot key a cache on version counters or data
  pointers without a graph break, and fuses chunk loops away anyway.
"""
import contextlib
import threading

import torch

from .. import compat

_HOST = threading.local()


def is_tracing() -> bool:
    """True while an exporter or TorchScript tracing records a graph whose sizes are graph values."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or compat.is_exporting()


def is_exporting() -> bool:
    """True while an ONNX exporter or ``torch.export`` records a graph for other sizes; False under plain
    TorchScript tracing (FLOP counting), which records one size and may keep the eager operators."""
    return torch.onnx.is_in_onnx_export() or compat.is_exporting()


def is_capturing() -> bool:
    """True under any graph capture: tracing (:func:`is_tracing`), ``torch.compile`` or ``torch.export``."""
    return is_tracing() or compat.is_compiling()


@contextlib.contextmanager
def host_constants():
    """Marks the computation of size-only constants on the host (CPU), such as TransNeXt's log-CPB offsets
    (``torch.unique`` has a data-dependent size, so on a GPU it would synchronise; on ``meta`` it cannot run).
    They are computed once per input size, cached with the model and copied to the input's device once;
    ``tests/test_devices.py`` allows host tensors only inside this block, and none on a second forward."""
    depth = getattr(_HOST, 'depth', 0)
    _HOST.depth = depth + 1
    try:
        yield
    finally:
        _HOST.depth = depth


def building_host_constants() -> bool:
    """True inside :func:`host_constants`."""
    return getattr(_HOST, 'depth', 0) > 0
