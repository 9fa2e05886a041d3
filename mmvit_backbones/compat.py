"""Named compatibility shims for the supported stacks (torch 2.1 to 2.13, numpy 1.x/2.x, mmengine 0.10).

Everything here is a narrowly scoped fix for a known incompatibility between the OpenMMLab 2.x
releases this package supports and the PyTorch/NumPy versions it runs on. Nothing else belongs in this module.

* **Supported floor: torch 2.1** (the official mmcv 2.1.0 wheels' torch; numpy 1.x below torch 2.3). Every torch
  API newer than that is reached through a function here with a fallback (:func:`is_compiling`,
  :func:`is_exporting`, :func:`autocast_enabled`, :func:`autocast_disabled`, :func:`load_weights_only`), and a
  feature that cannot work on an older torch raises :func:`require_torch`'s one error naming the version it needs.

* ``torch.load`` defaults to ``weights_only=True`` since torch 2.6. mmengine 0.10.7 calls
  ``torch.load(filename, map_location=...)`` without ``weights_only``, and its own checkpoints hold
  a few plain-data Python objects (``HistoryBuffer`` in the message hub, NumPy arrays and scalars
  in log buffers and dataset meta). Those are rejected by the weights-only unpickler, so
  ``load_from``/``--resume`` fail. We *keep* weights-only loading and add exactly those data
  classes to torch's allowlist (:func:`allow_mmengine_checkpoint_globals`). Arbitrary code in an
  untrusted pickle is still refused.
* mmengine's DDP wrapper assumes CUDA (:func:`cpu_distributed_overrides`), and its config lookup
  warns about ``pkg_resources`` on every load (:func:`silence_pkg_resources_warning`).
* mmengine resolves ``pkg::path`` configs only for OpenMMLab's own packages and finds a package's
  directory as ``<distribution location>/<name>``, wrong for PEP 660 editable installs
  (:func:`register_mim_configs`).
* Official research checkpoints sometimes carry the training script's ``argparse.Namespace``
  (``{'model': ..., 'args': Namespace(...)}``); it is plain data and is allowlisted too.
"""
import argparse
import collections
import contextlib
import functools
import pickle
import types
from typing import Tuple

import numpy as np
import torch

_INSTALLED = False
# Allowlisted globals for torch < 2.4, which has no torch.serialization.add_safe_globals: {'module.name': obj}.
_SAFE_GLOBALS: dict = {}

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


# ----------------------------------------------------------------------------------- graph capture
def is_compiling() -> bool:
    """``torch.compiler.is_compiling()`` (torch >= 2.3); ``torch._dynamo.is_compiling()`` before."""
    fn = getattr(torch.compiler, 'is_compiling', None)
    if fn is None:
        from torch import _dynamo  # imported by torch.compiler already: no extra cost
        fn = _dynamo.is_compiling
    return fn()


def is_exporting() -> bool:
    """``torch.compiler.is_exporting()`` (torch >= 2.5); False before (``torch.export`` of those versions is not a
    supported export path of this package: :func:`require_torch` guards it)."""
    fn = getattr(torch.compiler, 'is_exporting', None)
    return fn() if fn is not None else False


# ----------------------------------------------------------------------------------------- autocast
# Device types torch 2.1's torch.autocast accepts (torch >= 2.4 answers torch.amp.is_autocast_available).
_AUTOCAST_DEVICE_TYPES = ('cpu', 'cuda', 'xpu', 'hpu', 'xla')


def autocast_available(device_type: str) -> bool:
    """Whether ``torch.autocast(device_type)`` exists for this device type (not for ``meta``)."""
    fn = getattr(torch.amp, 'is_autocast_available', None)
    return fn(device_type) if fn is not None else device_type in _AUTOCAST_DEVICE_TYPES


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``torch.is_autocast_enabled(device_type)`` is torch >= 2.4)."""
    if not autocast_available(device_type):
        return False
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: one query per device type
        if device_type == 'cpu':
            return torch.is_autocast_cpu_enabled()
        if device_type == 'cuda':
            return torch.is_autocast_enabled()
        query = getattr(torch, f'is_autocast_{device_type}_enabled', None)
        return bool(query()) if query is not None else False


def autocast_disabled(device_type: str):
    """A context with autocast off for ``device_type``: a float32 region. No context for device types autocast
    does not know (``meta``), where nothing would be cast anyway."""
    if not autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


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


def _history_buffer_getattr(obj, name: str):
    """Stand-in for ``builtins.getattr`` inside weights-only unpickling of mmengine checkpoints.

    ``HistoryBuffer._statistics_methods`` maps names to the class's own statistics methods, which
    pickle as ``getattr(HistoryBuffer, 'mean')``. Allowlisting the real ``getattr`` would hand the
    unpickler arbitrary attribute access; this stand-in answers only public methods that
    ``HistoryBuffer`` itself defines.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(vars(HistoryBuffer).get(name)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'weights-only load: getattr({obj!r}, {name!r}) is not allowed')


def allow_mmengine_checkpoint_globals() -> None:
    """Allowlist the plain-data classes found in mmengine and research checkpoints.

    Idempotent. Safe to call before any ``torch.load``; it does not turn weights-only loading off.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.logging.history_buffer import HistoryBuffer
    safe = [HistoryBuffer, argparse.Namespace, collections.OrderedDict, collections.defaultdict, collections.Counter,
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
    aliases.append((_history_buffer_getattr, 'builtins.getattr'))
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:
        add_safe_globals(safe + aliases)
    else:  # torch < 2.4: kept for load_weights_only's restricted unpickler
        for obj in safe:
            _SAFE_GLOBALS[f'{obj.__module__}.{obj.__qualname__}'] = obj
        _SAFE_GLOBALS.update({name: obj for obj, name in aliases})
    _INSTALLED = True


def _torch_rebuild_globals() -> dict:
    """What a plain tensor checkpoint pickles through on torch < 2.4: rebuild functions, storages, dtypes."""
    found = {'torch.Size': torch.Size, 'torch.Tensor': torch.Tensor, 'torch.device': torch.device,
             'torch.nn.parameter.Parameter': torch.nn.Parameter, 'torch.serialization._get_layout':
             torch.serialization._get_layout, 'torch._tensor._rebuild_from_type_v2': torch._tensor._rebuild_from_type_v2,
             'collections.OrderedDict': collections.OrderedDict, '_codecs.encode': _latin1_bytes}
    for name in dir(torch._utils):
        if name.startswith('_rebuild_'):
            found[f'torch._utils.{name}'] = getattr(torch._utils, name)
    for cls in list(torch._tensor_classes) + list(torch._storage_classes):
        found[f'{cls.__module__}.{cls.__name__}'] = cls
    for name in dir(torch):
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype):
            found[f'torch.{name}'] = obj
    return found


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """Stand-in for ``_codecs.encode``, through which pickle protocol 2 stores ``bytes`` (torch.save's default)."""
    if not isinstance(text, str) or encoding != 'latin1':
        raise pickle.UnpicklingError(f'weights-only load: _codecs.encode({type(text).__name__}, {encoding!r}) '
                                     f"is not allowed (only pickled bytes, encoded 'latin1')")
    return text.encode('latin1')


class _RestrictedUnpickler(pickle.Unpickler):
    """Weights-only unpickling for torch < 2.4: globals only from torch's rebuild set and the allowlist
    (the "restricting globals" pattern of Python's pickle documentation)."""

    def find_class(self, module: str, name: str):
        import _compat_pickle  # protocol 2 names Python 3's modules by their Python 2 names, as pickle maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        allowed = _allowed_globals()
        if f'{module}.{name}' in allowed:
            return allowed[f'{module}.{name}']
        raise pickle.UnpicklingError(f'weights-only load: global {module}.{name} is not allowed')


@functools.lru_cache(maxsize=1)
def _allowed_globals() -> dict:
    return {**_torch_rebuild_globals(), **_SAFE_GLOBALS}


_RESTRICTED_PICKLE = types.SimpleNamespace(Unpickler=_RestrictedUnpickler, load=pickle.load,
                                           __name__='mmvit_backbones_weights_only_pickle')


def load_weights_only(f, map_location=None):
    """``torch.load(f, weights_only=True)`` with the allowlist of :func:`allow_mmengine_checkpoint_globals`.

    torch >= 2.4 takes the allowlist itself. Older torch (2.1's weights-only unpickler refuses NumPy and
    ``argparse.Namespace`` objects outright) unpickles through :class:`_RestrictedUnpickler`, which resolves only
    torch's tensor-rebuild globals and the same allowlist, so a pickle that reaches for anything else is refused
    with ``pickle.UnpicklingError`` on every supported torch.
    """
    allow_mmengine_checkpoint_globals()
    if hasattr(torch.serialization, 'add_safe_globals'):
        return torch.load(f, map_location=map_location, weights_only=True)
    _allowed_globals.cache_clear()
    return torch.load(f, map_location=map_location, weights_only=False, pickle_module=_RESTRICTED_PICKLE)


def install() -> None:
    """Apply the import-time shims (called once from ``mmvit_backbones/__init__``)."""
    silence_pkg_resources_warning()  # first: mmengine imports pkg_resources on import
    allow_mmengine_checkpoint_globals()
    register_mim_configs()


def register_mim_configs() -> None:
    """Make ``_base_ = ['mmvit_backbones::<family>/<config>.py']`` resolve, after a plain or editable install.

    The configs ship in ``mmvit_backbones/.mim/configs`` (see setup.py), where mmengine 0.10.7 looks for
    ``pkg::`` configs, but (1) it accepts only the packages in its ``MODULE2PACKAGE`` table, (2) it takes
    the package directory to be ``<distribution location>/<name>``, which for a PEP 660 editable install
    is site-packages, not the source tree, and (3) it tags the base's dicts with ``_scope_='mmvit_backbones'``,
    a registry scope that does not exist (our backbones live in the root registry and our configs name
    ``default_scope`` mmdet/mmseg). So: the table gets our entry, the directory is the imported package's,
    and a ``mmvit_backbones::`` base is read with no scope, as if the file had been copied next to the
    user's config. Takes effect once ``mmvit_backbones`` is imported (the tools do so before loading a
    config; a user script imports it before ``Config.fromfile``).
    """
    import os.path as osp

    import mmengine.utils as mmengine_utils
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    if getattr(config_module.Config._get_cfg_path, '_mmvit_backbones', False):
        return
    package = __name__.split('.')[0]
    package_dir = osp.dirname(osp.abspath(__file__))
    config_utils.MODULE2PACKAGE.setdefault(package, package)

    original_get_installed_path = config_module.get_installed_path

    def get_installed_path(name: str) -> str:
        return package_dir if name == package else original_get_installed_path(name)

    original_get_cfg_path = config_module.Config._get_cfg_path

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


def silence_pkg_resources_warning() -> None:
    """mmengine imports ``pkg_resources`` (deprecated in setuptools >= 80) to find ``mmdet::`` configs.

    The warning fires on every config load and says nothing actionable for users of this package
    (the pinned setuptools < 81 still ships it), so it is filtered by message.
    """
    import warnings
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def cpu_distributed_overrides(cfg) -> None:
    """Make mmengine's DDP wrapper work for CPU processes (``torchrun`` without GPUs).

    mmengine 0.10.7 always passes ``device_ids=[LOCAL_RANK]`` to ``DistributedDataParallel``, defaults
    to the NCCL backend, and calls ``torch.cuda.set_device`` while initialising; all GPU-only. On a
    machine without CUDA we start the gloo process group ourselves (torchrun's env:// variables) and
    use ``device_ids=None`` (torch's DDP for CPU modules). Nothing changes when CUDA exists.
    """
    if torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('launcher') == 'pytorch' and not torch.distributed.is_initialized():
        # mmengine's init_dist calls torch.cuda.set_device(LOCAL_RANK), which fails without CUDA; a process
        # group that already exists is reused by the Runner (it only initialises when none is there).
        torch.distributed.init_process_group(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper = dict(wrapper)
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    cfg.model_wrapper_cfg = wrapper
