"""Where checkpoint bytes come from, and how they are unpickled. mmengine's ``CheckpointLoader`` schemes
(``s3://``, ...: a weights-only ``torch.load`` of a buffer) read all but what mmengine would unpickle with
``weights_only=False`` or does not know: local paths (``safetensors`` by its header, else ``torch.load(weights_only=
True)`` with the compat allowlist), ``http(s)://`` (downloaded once into torch hub's cache), ``open-mmlab://``
(mmengine's model-zoo table) and ``mmvit://<name>`` (a default release, :mod:`.zoo`). An expected hash is optional:
``sha256='<hex or prefix>'``, or ``check_hash=True`` for torch hub's file names ``name-<sha256 prefix>.ext``.
"""
import hashlib
import os
import os.path as osp
import pickle
import re
import shutil
import socket
import urllib.error
import urllib.request
import uuid
from typing import Optional
from urllib.parse import urlparse

import torch

CONTAINER_KEYS = ('state_dict', 'model', 'state_dict_ema', 'model_ema')
HASH_REGEX = re.compile(r'-([a-f0-9]+)\.')  # torch.hub's convention: name-<sha256 prefix>.ext
DOWNLOAD_TIMEOUT_ENV = 'MMVIT_DOWNLOAD_TIMEOUT'
DEFAULT_DOWNLOAD_TIMEOUT_S = 5.0
_ZIP_MAGIC = b'PK\x03\x04'  # torch.save's default (zip) format
_PICKLE_PROTOCOL_2_PLUS = b'\x80'  # legacy torch.save format starts with a pickle PROTO opcode
_SAFETENSORS_MAX_HEADER = 100 << 20  # the safetensors format's own limit on its JSON header (100 MB)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or that does not fit the model."""


class CheckpointDownloadError(CheckpointError):
    """A checkpoint URL that could not be downloaded (offline, unreachable, HTTP error, timeout)."""


def is_url(path: str) -> bool:
    return isinstance(path, str) and path.startswith(('http://', 'https://'))


def cache_dir() -> str:
    """torch hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/...`` by default)."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


# Names that say nothing about the model (every timm repository on the Hub has a 'model.safetensors'), so that
# under torch hub's rule alone they would overwrite each other in the cache.
GENERIC_FILE_NAMES = ('model.safetensors', 'pytorch_model.bin', 'model.bin', 'model.pth', 'model.pt',
                      'open_clip_model.safetensors', 'open_clip_pytorch_model.bin')


def cached_path(url: str) -> str:
    """The cache file of a URL: its path's last component (torch hub's rule); a generic name prefixed with the
    Hub repository of ``.../<owner>/<repo>/resolve/<revision>/<file>`` (else with the parent folder)."""
    path = urlparse(url).path
    parts = [p for p in path.split('/') if p]
    if not parts or path.endswith('/'):
        raise CheckpointError(f'checkpoint URL {url!r} does not end in a file name')
    name = parts[-1]
    if name in GENERIC_FILE_NAMES and len(parts) > 1:
        at = parts.index('resolve') if 'resolve' in parts[:-1] else 0  # .../<owner>/<repo>/resolve/...
        name = '_'.join((parts[at - 2:at] if at >= 2 else parts[-2:-1]) + [name])
    return osp.join(cache_dir(), name)


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def expected_sha256(path_or_url: str, sha256: Optional[str], check_hash: bool) -> Optional[str]:
    """The hex (or hex prefix) the file must hash to, from ``sha256=`` or the ``-<prefix>.`` file name."""
    if sha256:
        sha256 = str(sha256).lower()
        if not re.fullmatch(r'[0-9a-f]{8,64}', sha256):
            raise ValueError(f'sha256 {sha256!r} is not a hex digest (8 to 64 hex digits expected)')
        return sha256
    if check_hash:
        match = HASH_REGEX.search(osp.basename(urlparse(path_or_url).path if is_url(path_or_url) else path_or_url))
        if not match:
            raise ValueError(f'check_hash=True needs a file name of the form name-<sha256 prefix>.ext '
                             f"(torch hub's convention), got {path_or_url!r}; or give sha256=")
        return match.group(1)
    return None


def verify_sha256(path: str, expected: Optional[str], source: str) -> None:
    if not expected:
        return
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise CheckpointError(f'checkpoint {source} ({path}) has sha256 {actual}, expected one starting with '
                              f'{expected}: the file is damaged or not the one expected. Delete it and download '
                              f'it again.')


def _download(url: str, dst: str, progress: bool) -> None:
    """``url`` into a ``.partial`` file moved to ``dst`` once complete, under a timeout of this request alone (not
    the process-wide socket default); a failure names the URL and the cache file to place by hand."""
    from tqdm import tqdm
    value = os.environ.get(DOWNLOAD_TIMEOUT_ENV, '')
    try:
        timeout = float(value) if value else DEFAULT_DOWNLOAD_TIMEOUT_S
    except ValueError:
        raise ValueError(f'{DOWNLOAD_TIMEOUT_ENV}={value!r} is not a number of seconds') from None
    os.makedirs(osp.dirname(dst), exist_ok=True)
    partial = f'{dst}.{uuid.uuid4().hex}.partial'
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'mmvit-backbones'})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, 'wb') as f, \
                tqdm.wrapattr(f, 'write', total=response.length, disable=not progress, desc=osp.basename(dst)) as out:
            shutil.copyfileobj(response, out)
        os.replace(partial, dst)
        return
    except urllib.error.HTTPError as err:
        reason, cause = f'HTTP {err.code} {err.reason}', err
    except urllib.error.URLError as err:
        reason, cause = f'unreachable ({err.reason})', err
    except (socket.timeout, TimeoutError) as err:
        reason, cause = f'no answer within {timeout:g} s (${DOWNLOAD_TIMEOUT_ENV} sets the timeout)', err
    except OSError as err:
        reason, cause = f'{type(err).__name__}: {err}', err
    finally:
        if osp.exists(partial):
            os.remove(partial)
    raise CheckpointDownloadError(f'cannot download checkpoint {url}: {reason}. Without network access, download '
                                  f'the file elsewhere and place it at {dst} (torch hub cache, '
                                  f'$TORCH_HOME/hub/checkpoints), or set the checkpoint to a local path.') from cause


def download_to_cache(url: str, progress: Optional[bool] = None, sha256: Optional[str] = None,
                      check_hash: bool = False) -> str:
    """The cached file of ``url``, downloaded once (rank 0 first under DDP). The hash, if any, is checked on every
    call (also of a file placed by hand); a fresh download that fails it is deleted, so a retry downloads anew."""
    from mmengine.dist import barrier, get_rank  # barrier() is a no-op outside DDP
    dst = cached_path(url)
    expected = expected_sha256(url, sha256, check_hash)
    progress = os.isatty(2) if progress is None else progress
    rank = get_rank()
    if rank != 0:
        barrier()  # rank 0 downloads first; the others then read the cache (or download on another node)
    downloaded = not osp.isfile(dst)
    if downloaded:
        _download(url, dst, progress)
    if rank == 0:
        barrier()
    try:
        verify_sha256(dst, expected, url)
    except CheckpointError:
        if downloaded:
            os.remove(dst)
        raise
    return dst


def _resolve_openmmlab(path: str) -> str:
    """``open-mmlab://name`` -> the URL or local file mmengine's model-zoo table names."""
    from mmengine.runner.checkpoint import _get_mmengine_home, get_deprecated_model_names, get_external_models
    name = path.split('://', 1)[1]
    name, urls = get_deprecated_model_names().get(name, name), get_external_models()
    if name not in urls:
        raise CheckpointError(f'{path}: {name!r} is not in mmengine\'s open-mmlab model zoo table')
    target = urls[name]
    return target if is_url(target) else osp.join(_get_mmengine_home(), target)


def is_safetensors_header(head: bytes) -> bool:
    """Whether a file's first bytes start a ``safetensors`` file: a little-endian u64 length, then JSON (``{``)."""
    return 2 <= int.from_bytes(head[:8], 'little') <= _SAFETENSORS_MAX_HEADER and head[8:9] == b'{'


def _check_file(path: str) -> bytes:
    """The first bytes of ``path``; raises saying why it cannot be a checkpoint (missing, directory, format)."""
    if not osp.exists(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist')
    if osp.isdir(path):
        raise CheckpointError(f'checkpoint {path!r} is a directory, not a checkpoint file; give the .pth file '
                              f'inside it')
    with open(path, 'rb') as f:
        head = f.read(64)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_PROTOCOL_2_PLUS)) and not is_safetensors_header(head):
        kind = 'a text file' if head and all(32 <= b < 127 or b in b'\t\r\n' for b in head) else 'another format'
        raise CheckpointError(f'checkpoint {path!r} is not a PyTorch checkpoint ({kind}, {osp.getsize(path)} bytes, '
                              f'starting with {head[:24]!r}); expected a torch.save file (zip archive or pickle) or '
                              f'a .safetensors file')
    return head


def load_safetensors(path: str, map_location='cpu') -> dict:
    """The tensors of a ``safetensors`` file as a raw state dict (no code can run: the format holds
    only tensors). ``map_location`` may be a device or a device string; a callable is not supported."""
    from safetensors import SafetensorError  # a runtime requirement (requirements/runtime.txt)
    from safetensors.torch import load_file
    if callable(map_location):
        raise ValueError(f'map_location {map_location!r}: a safetensors checkpoint ({path}) takes a device or '
                         f"device string such as 'cpu', not a function")
    try:
        state_dict = load_file(path, device='cpu')
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f'cannot read checkpoint {path}: the safetensors file is truncated or corrupt '
                              f'({type(err).__name__}: {_first_line(err)})') from err
    return {k: v.to(map_location or 'cpu') for k, v in state_dict.items()}  # a no-op on the CPU


def load_local(path: str, map_location='cpu'):
    """A local checkpoint file: ``safetensors`` by its header, else ``torch.load(weights_only=True)``; errors say
    what is wrong with the file."""
    from .. import compat
    if is_safetensors_header(_check_file(path)):
        return load_safetensors(path, map_location)
    compat.allow_mmengine_checkpoint_globals()
    try:
        return compat.load_weights_only(path, map_location=map_location)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file; say so once
        if isinstance(err, pickle.UnpicklingError) and 'global' in str(err).lower():  # an allowlist refusal
            raise CheckpointError(
                f'checkpoint {path} holds Python objects outside the weights-only allowlist, so it was not '
                f'unpickled (untrusted pickles can run code). If you trust the file, re-save its state dict '
                f'with tools/convert_checkpoint.py --trust. Detail: {_first_line(err)}') from err
        raise CheckpointError(f'cannot read checkpoint {path}: the file is truncated, corrupt or not a PyTorch '
                              f'checkpoint ({type(err).__name__}: {_first_line(err)})') from err


def _first_line(err: BaseException) -> str:
    """The first line of torch's message, without its advice to retry with ``weights_only=False``."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def local_checkpoint_file(path: str, sha256: Optional[str] = None, check_hash: bool = False,
                          progress: Optional[bool] = None) -> Optional[str]:
    """The local file behind ``path`` (downloading a URL), or None for a scheme mmengine serves itself."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f'checkpoint must be a path or URL string, got {type(path).__name__} {path!r}')
    path = os.fspath(path)
    if path.startswith(('open-mmlab://', 'openmmlab://')):
        path = _resolve_openmmlab(path)
    if path.startswith('mmvit://'):  # a default release (.zoo), downloaded like any URL; the caller's hash wins
        from .zoo import SCHEME, direct_url, get_release
        release = get_release(path[len(SCHEME):])
        try:
            return download_to_cache(direct_url(release), progress=progress, sha256=sha256 or release.sha256,
                                     check_hash=check_hash or (release.check_hash and not sha256))
        except CheckpointDownloadError as err:
            raise CheckpointDownloadError(f'{path} (the default release of {path[len(SCHEME):]}): {err}') from err
    if is_url(path):
        return download_to_cache(path, progress=progress, sha256=sha256, check_hash=check_hash)
    if CheckpointLoader._get_checkpoint_loader(path) is not load_from_local:
        return None
    path = osp.expanduser(path)
    _check_file(path)
    verify_sha256(path, expected_sha256(path, sha256, check_hash), path)
    return path


def read_checkpoint(path: str, map_location='cpu', sha256: Optional[str] = None, check_hash: bool = False,
                    progress: Optional[bool] = None) -> dict:
    """The checkpoint dict (a container or a raw state dict) at anything mmengine's ``CheckpointLoader``
    reads: local files and URLs by :func:`load_local`, other schemes by their ``CheckpointLoader`` backend."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import CheckpointLoader
    local = local_checkpoint_file(path, sha256=sha256, check_hash=check_hash, progress=progress)
    if local is None:
        ckpt = CheckpointLoader.load_checkpoint(path, map_location=map_location)
    else:
        if local != path:
            print_log(f'checkpoint {path} -> {local}', logger='current')
        ckpt = load_local(local, map_location)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, expected a dict of tensors '
                              f'or a dict with one of {CONTAINER_KEYS}')
    return ckpt
