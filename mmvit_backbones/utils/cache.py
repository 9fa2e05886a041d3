"""One bounded cache for tensors that depend only on sizes (masks, index tables, position codes)."""
from collections import OrderedDict
from typing import Callable, Hashable, Optional, TypeVar

import torch

from .tracing import is_capturing

T = TypeVar('T')


class ShapeCache:
    """Least-recently-used cache of at most ``max_entries`` values, owned by a module (multi-scale training sees
    many sizes). Keyed by the caller's key (the sizes), the device, the dtype and whether ``torch.inference_mode`` is
    on (autograd refuses to save inference tensors for backward); under graph capture nothing is cached."""

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
        value = self._entries[full_key] = make()
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:  # also what bool(cache) answers
        return len(self._entries)
