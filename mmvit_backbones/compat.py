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
import functools
import pickle

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
    aliases.append((_history_buffer_getattr, 'builtins.getattr'))
    torch.serialization.add_safe_globals(safe + aliases)
    _INSTALLED = True


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
