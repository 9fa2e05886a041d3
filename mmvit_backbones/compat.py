"""Named compatibility shims for the pinned stack (torch 2.13, numpy 2, mmengine 0.10.7).

Everything here is a narrowly scoped fix for a known incompatibility between the OpenMMLab 2.x
releases this package supports and current PyTorch/NumPy. Nothing else belongs in this module.

* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6. mmengine 0.10.7 calls
  ``torch.load(filename, map_location=...)`` without ``weights_only``, and its own checkpoints hold
  a few plain-data Python objects (``HistoryBuffer`` in the message hub, NumPy arrays and scalars
  in log buffers and dataset meta). Those are rejected by the weights-only unpickler, so
  ``load_from``/``--resume`` fail. We *keep* weights-only loading and add exactly those data
  classes to torch's allowlist (:func:`allow_mmengine_checkpoint_globals`). Arbitrary code in an
  untrusted pickle is still refused.
* Official research checkpoints sometimes carry the training script's ``argparse.Namespace``
  (``{'model': ..., 'args': Namespace(...)}``); it is plain data and is allowlisted too.
"""
import argparse
import collections
import functools

import numpy as np
import torch

_INSTALLED = False


def _numpy_globals() -> list:
    """NumPy objects that plain arrays/scalars/dtypes pickle through (NumPy 1.x and 2.x paths)."""
    found = [np.ndarray, np.dtype]
    try:  # numpy 2 moved the pickling helpers to numpy._core; old pickles use numpy.core
        from numpy._core import multiarray as core_multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as core_multiarray
    found += [core_multiarray._reconstruct, core_multiarray.scalar]
    # dtype classes (numpy >= 1.25 pickles dtypes through numpy.dtypes.*DType)
    dtypes_mod = getattr(np, 'dtypes', None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            obj = getattr(dtypes_mod, name)
            if isinstance(obj, type) and name.endswith('DType'):
                found.append(obj)
    return found


def allow_mmengine_checkpoint_globals() -> None:
    """Allowlist the plain-data classes found in mmengine and research checkpoints.

    Idempotent. Safe to call before any ``torch.load``; it does not turn weights-only loading off.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [HistoryBuffer, argparse.Namespace, collections.OrderedDict, collections.defaultdict,
            functools.partial] + _numpy_globals()
    # numpy pickles also refer to numpy.core.multiarray by its old name; register aliases so a
    # checkpoint written under NumPy 1.x loads under NumPy 2.x and vice versa.
    aliases = []
    for alias in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        for attr in ('_reconstruct', 'scalar'):
            try:
                mod = __import__(alias, fromlist=[attr])
                aliases.append((getattr(mod, attr), f'{alias}.{attr}'))
            except (ImportError, AttributeError):
                continue
    torch.serialization.add_safe_globals(safe + aliases)
    _INSTALLED = True


def install() -> None:
    """Apply every shim in this module (called once from ``mmvit_backbones/__init__``)."""
    allow_mmengine_checkpoint_globals()
