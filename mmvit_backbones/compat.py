"""Named shims for the supported stacks (torch 2.1 to 2.13, numpy 1.x/2.x, mmengine 0.10), nothing else: every
torch API newer than 2.1 (the mmcv 2.1.0 wheels' torch) is reached here with a fallback, and a feature that needs a
newer torch raises :func:`require_torch`. docs/install.md lists each shim and why it exists."""
import argparse
import collections
import contextlib
import functools
import importlib
import os.path as osp
import pickle
import types
import warnings
from typing import Tuple

import numpy as np
import torch

MIN_TORCH = (2, 1)


def torch_version() -> Tuple[int, int]:
    """``(major, minor)`` of the running torch (``'2.1.2+cu121'`` -> ``(2, 1)``)."""
    major, minor = torch.__version__.split('+')[0].split('.')[:2]
    return int(major), int(''.join(ch for ch in minor if ch.isdigit()))


def require_torch(version: Tuple[int, int], feature: str) -> None:
    """Raise one clear error when ``feature`` needs a newer torch than the running one."""
    if torch_version() < tuple(version):
        raise RuntimeError(f'{feature} needs torch >= {version[0]}.{version[1]}; this is torch {torch.__version__} '
                           f'(mmvit_backbones supports torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]}, where everything '
                           f'else works)')


# torch.serialization.add_safe_globals (torch >= 2.4) takes ``(obj, 'module.name')`` pairs from torch 2.6 on; before
# 2.6, weights-only loading goes through :class:`_RestrictedUnpickler` and this allowlist: {'module.name': obj}.
SAFE_GLOBAL_PAIRS = torch_version() >= (2, 6)
_SAFE_GLOBALS: dict = {}


# torch.compiler.is_compiling (torch >= 2.3); torch._dynamo's before (imported by torch.compiler already)
is_compiling = getattr(torch.compiler, 'is_compiling', None) or torch._dynamo.is_compiling
# torch.compiler.is_exporting (torch >= 2.5); False before, where require_torch refuses export
is_exporting = getattr(torch.compiler, 'is_exporting', lambda: False)


def autocast_available(device_type: str) -> bool:
    """Whether ``torch.autocast(device_type)`` exists for this device type (not for ``meta``)."""
    fn = getattr(torch.amp, 'is_autocast_available', None)  # torch >= 2.4; below, the types torch 2.1 accepts
    return fn(device_type) if fn is not None else device_type in ('cpu', 'cuda', 'xpu', 'hpu', 'xla')


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``torch.is_autocast_enabled(device_type)`` is torch >= 2.4)."""
    if not autocast_available(device_type):
        return False
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: is_autocast_enabled() is CUDA's, is_autocast_<device>_enabled() the others'
        name = 'is_autocast_enabled' if device_type == 'cuda' else f'is_autocast_{device_type}_enabled'
        return bool(getattr(torch, name, lambda: False)())


def autocast_disabled(device_type: str):
    """A context with autocast off for ``device_type`` (a float32 region); none where autocast is unknown (meta)."""
    return torch.autocast(device_type, enabled=False) if autocast_available(device_type) else contextlib.nullcontext()


def _history_buffer_getattr(obj, name: str):
    """``builtins.getattr`` for weights-only unpickling (``HistoryBuffer._statistics_methods`` pickles as
    ``getattr(HistoryBuffer, 'mean')``), limited to the public methods ``HistoryBuffer`` itself defines."""
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(vars(HistoryBuffer).get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'weights-only load: getattr({obj!r}, {name!r}) is not allowed')


@functools.lru_cache(maxsize=None)  # once
def allow_mmengine_checkpoint_globals() -> None:
    """Allowlist the plain-data classes of mmengine's and the authors' checkpoints (weights-only loading stays on)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtypes through numpy.dtypes.*DType
    safe = [HistoryBuffer, argparse.Namespace, collections.OrderedDict, collections.defaultdict, collections.Counter,
            functools.partial, np.ndarray, np.dtype]
    safe += [cls for cls in (getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')) if isinstance(cls, type)]
    # NumPy's pickling helpers under both module names, so a checkpoint of NumPy 1.x loads under 2.x and back
    aliases = [(_history_buffer_getattr, 'builtins.getattr')]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        with contextlib.suppress(ImportError, AttributeError):
            multiarray = importlib.import_module(module)
            aliases += [(getattr(multiarray, n), f'{module}.{n}') for n in ('_reconstruct', 'scalar')]
    if SAFE_GLOBAL_PAIRS:
        torch.serialization.add_safe_globals(safe + aliases)
    else:  # for load_weights_only's restricted unpickler, with what plain tensors pickle through
        _SAFE_GLOBALS.update({f'{obj.__module__}.{obj.__qualname__}': obj for obj in safe})
        _SAFE_GLOBALS.update({name: obj for obj, name in aliases})
        _SAFE_GLOBALS.update(_torch_rebuild_globals())


def _torch_rebuild_globals() -> dict:
    """What a plain tensor checkpoint pickles through: rebuild functions, storages, dtypes."""
    found = {'torch.Size': torch.Size, 'torch.Tensor': torch.Tensor, 'torch.device': torch.device,
             'torch.nn.parameter.Parameter': torch.nn.Parameter, 'collections.OrderedDict': collections.OrderedDict,
             'torch.serialization._get_layout': torch.serialization._get_layout, '_codecs.encode': _latin1_bytes,
             'torch._tensor._rebuild_from_type_v2': torch._tensor._rebuild_from_type_v2}
    found.update({f'torch._utils.{n}': obj for n, obj in vars(torch._utils).items() if n.startswith('_rebuild_')})
    found.update({f'{cls.__module__}.{cls.__name__}': cls for cls in [*torch._tensor_classes, *torch._storage_classes]})
    found.update({f'torch.{name}': obj for name, obj in vars(torch).items() if isinstance(obj, torch.dtype)})
    return found


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``, through which pickle protocol 2 stores ``bytes`` (torch.save's default)."""
    if not isinstance(text, str) or encoding != 'latin1':
        raise pickle.UnpicklingError(f'weights-only load: _codecs.encode({type(text).__name__}, {encoding!r}) '
                                     f"is not allowed (only pickled bytes, encoded 'latin1')")
    return text.encode('latin1')


class _RestrictedUnpickler(pickle.Unpickler):
    """Weights-only unpickling for torch < 2.6: globals from torch's rebuild set and the allowlist only."""

    def find_class(self, module: str, name: str):
        import _compat_pickle  # protocol 2 names Python 3's modules by their Python 2 names, as pickle maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if f'{module}.{name}' in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[f'{module}.{name}']
        raise pickle.UnpicklingError(f'weights-only load: global {module}.{name} is not allowed')


_RESTRICTED_PICKLE = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=pickle.load,
                                           __name__='mmvit_backbones_weights_only_pickle')


def load_weights_only(f, map_location=None):
    """``torch.load(f, weights_only=True)`` with the allowlist (torch < 2.6, whose weights-only unpickler cannot
    take it: through :class:`_RestrictedUnpickler`); any other global raises ``UnpicklingError``."""
    allow_mmengine_checkpoint_globals()
    if SAFE_GLOBAL_PAIRS:
        return torch.load(f, map_location=map_location, weights_only=True)
    return torch.load(f, map_location=map_location, weights_only=False, pickle_module=_RESTRICTED_PICKLE)


def finish_distributed() -> None:
    """End of a distributed run (tools/train.py, tools/test.py): meet the other ranks, then destroy the process
    group before the interpreter exits. mmengine leaves it to interpreter shutdown, where gloo on torch 2.1 can abort
    a finished run ("terminate called without an active exception", SIGABRT) while a peer still talks to it."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def install() -> None:
    """Apply the import-time shims (called once from ``mmvit_backbones/__init__``)."""
    # first, as mmengine imports pkg_resources (deprecated in setuptools >= 80: a warning on every config load)
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    allow_mmengine_checkpoint_globals()
    register_mim_configs()


def register_mim_configs() -> None:
    """Make ``_base_ = ['mmvit_backbones::<family>/<config>.py']`` resolve after a plain or editable install:
    mmengine 0.10.7 finds ``pkg::`` configs in ``<package>/.mim/configs`` only for the packages of its
    ``MODULE2PACKAGE`` table, in ``<distribution location>/<name>`` (site-packages for a PEP 660 editable install),
    and tags them with the package's scope, which does not exist (the backbones live in the root registry)."""
    import mmengine.utils as mmengine_utils
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    if getattr(config_module.Config._get_cfg_path, '_mmvit_backbones', False):
        return
    package = __name__.split('.')[0]
    package_dir = osp.dirname(osp.abspath(__file__))
    config_utils.MODULE2PACKAGE.setdefault(package, package)

    original_get_installed_path = config_module.get_installed_path
    original_get_cfg_path = config_module.Config._get_cfg_path

    def get_installed_path(name: str) -> str:
        return package_dir if name == package else original_get_installed_path(name)

    def _get_cfg_path(cfg_path: str, filename: str):
        mim_dir = osp.join(package_dir, '.mim')
        if cfg_path.startswith(f'{package}::') and not osp.isdir(osp.join(mim_dir, 'configs')):
            raise FileNotFoundError(
                f'{cfg_path!r} (in {filename}): {mim_dir}/configs does not exist; the configs are put there by '
                f'`pip install .` or `pip install -e .` (this {package} at {package_dir} was not installed so)')
        path, scope = original_get_cfg_path(cfg_path, filename)
        return (path, None) if scope == package else (path, scope)

    _get_cfg_path._mmvit_backbones = True
    config_module.get_installed_path = get_installed_path
    mmengine_utils.get_installed_path = get_installed_path  # for modules imported later (mmengine.hub, mim)
    config_module.Config._get_cfg_path = staticmethod(_get_cfg_path)


def cpu_distributed_overrides(cfg) -> None:
    """Make mmengine's DDP wrapper work without CUDA (``torchrun`` on CPUs): mmengine 0.10.7 passes
    ``device_ids=[LOCAL_RANK]``, defaults to NCCL and calls ``torch.cuda.set_device``."""
    if torch.cuda.is_available():
        return
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('launcher') == 'pytorch' and not torch.distributed.is_initialized():
        # mmengine's init_dist would call torch.cuda.set_device; the Runner reuses a process group that exists
        torch.distributed.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel'), device_ids=None)
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
