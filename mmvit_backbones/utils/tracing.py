"""Which kind of graph capture is running, so that eager-only shortcuts (shape-keyed caches, Python branches on
sizes, chunk loops) can step aside. Exporters and TorchScript tracing record sizes as graph values but turn each
Python branch on a size into a guard that fails for other sizes, so an exported path always pads (even by zero),
never chunks and caches nothing; dynamo cannot key a cache on tensors without a graph break.
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
    """True while an ONNX exporter or ``torch.export`` records a graph for all sizes (not TorchScript tracing)."""
    return torch.onnx.is_in_onnx_export() or compat.is_exporting()


def is_capturing() -> bool:
    """True under any graph capture: tracing (:func:`is_tracing`), ``torch.compile`` or ``torch.export``."""
    return is_tracing() or compat.is_compiling()


@contextlib.contextmanager
def host_constants():
    """Marks size-only constants computed on the host (TransNeXt's log-CPB offsets: ``torch.unique`` would
    synchronise a GPU); ``tests/test_devices.py`` allows host tensors only inside this block."""
    depth = getattr(_HOST, 'depth', 0)
    _HOST.depth = depth + 1
    try:
        yield
    finally:
        _HOST.depth = depth


def building_host_constants() -> bool:
    """True inside :func:`host_constants`."""
    return getattr(_HOST, 'depth', 0) > 0
