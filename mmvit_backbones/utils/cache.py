"""One bounded cache for tensors that depend only on sizes (masks, index tables, position codes).

Every entry is keyed by what the caller names (the sizes) plus the device, the dtype and whether
``torch.inference_mode`` is on: a tensor made under inference mode is never handed to a later
autograd forward (PyTorch refuses to save inference tensors for backward). Under graph capture the
value is computed in the graph and nothing is cached (sizes are graph values there).
"""
from collections import OrderedDict
from typing import Callable, Hashable, Optional, TypeVar

import torch

from .tracing import is_capturing

T = TypeVar('T')


class ShapeCache:
    """Least-recently-used cache of at most ``max_entries`` values, owned by a module instance (never
    by a Python module, so it lives as long as the model). Multi-scale training sees many sizes; the
    bound keeps the memory of one model to a few sizes' tables."""

    def __init__(self, max_entries: int = 16) -> None:
        self.max_entries = max_entries
        self._entries: 'OrderedDict[tuple, object]' = OrderedDict()

    def get(self, key: Hashable, make: Callable[[], T], device: Optional[torch.device] = None,
            dtype: Optional[torch.dtype] = None) -> T:
        """``make()``, computed once per ``(key, device, dtype, inference mode)``."""
        if is_capturing():
            return make()
        full_key = (key, None if device is None else str(device), dtype, torch.is_inference_mode_enabled())
        if full_key in self._entries:
            self._entries.move_to_end(full_key)
            return self._entries[full_key]
        value = make()
        self._entries[full_key] = value
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)
