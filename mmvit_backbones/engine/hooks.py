"""Exact resume: the random-number states travel with the checkpoint (docs/reliability.md).

mmengine 0.10.7 resumes the model, optimizer, schedulers, message hub, the seed, and the data order
(``IterBasedTrainLoop`` replays the sampler by fetching the ``iter`` batches already trained;
epoch loops reseed the sampler per epoch). It does not resume the global random-number generators
that dropout, drop-path and random augmentations draw from, so a resumed run is a different run.
:class:`RNGStateHook` closes that gap.
"""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

CHECKPOINT_KEY = 'rng_states'
FORMAT_VERSION = 2  # 1: states as tensors (restored too); 2: bytes and ints, no tensor
READABLE_VERSIONS = (1, 2)


def _raw_rng_state() -> tuple:
    """The generators' states as their libraries return them (cheap: taken after every iteration)."""
    cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    return torch.get_rng_state(), np.random.get_state(legacy=False), random.getstate(), cuda


def _bytes(state: torch.Tensor) -> bytes:
    return state.cpu().numpy().tobytes()


def _plain_rng_state(raw: tuple) -> dict:
    """``raw`` as bytes, ints and floats only: loadable with ``weights_only=True``, and with no tensor that a
    ``map_location`` could move to another device (mmengine resumes with the GPU as ``map_location``)."""
    torch_state, np_state, (version, py_words, gauss), cuda = raw
    if np_state['bit_generator'] != 'MT19937':  # pragma: no cover - np.random's global is always MT19937
        raise RuntimeError(f"RNGStateHook: unexpected numpy bit generator {np_state['bit_generator']!r}")
    state = dict(
        torch=_bytes(torch_state),
        numpy=dict(key=np_state['state']['key'].astype(np.uint32).tobytes(), pos=int(np_state['state']['pos']),
                   has_gauss=int(np_state['has_gauss']), gauss=float(np_state['gauss'])),
        python=dict(version=int(version), words=[int(w) for w in py_words],
                    gauss=None if gauss is None else float(gauss)))
    if cuda is not None:
        state['cuda'] = _bytes(cuda)
    return state


def capture_rng_state() -> dict:
    """This process's generator states as bytes and ints only (loadable with ``weights_only=True``):
    torch CPU (and the current CUDA device's where CUDA is initialised), NumPy's global ``MT19937``
    and Python's ``random``."""
    return _plain_rng_state(_raw_rng_state())


def _byte_tensor(value) -> torch.Tensor:
    """A generator state as the CPU ``uint8`` tensor torch wants: from bytes (format 2) or from a tensor on any
    device (format 1 checkpoints, which mmengine's ``map_location`` may have put on the GPU)."""
    if isinstance(value, (bytes, bytearray)):
        return torch.frombuffer(bytearray(value), dtype=torch.uint8)
    return value.detach().to('cpu', torch.uint8)


def _ints(value) -> List[int]:
    return value.cpu().tolist() if isinstance(value, torch.Tensor) else [int(v) for v in value]


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`; also reads format-1 states (tensors, on any device)."""
    torch.set_rng_state(_byte_tensor(state['torch']))
    np_state = state['numpy']
    key = np_state['key']
    key = (np.frombuffer(key, dtype=np.uint32).copy() if isinstance(key, (bytes, bytearray))
           else np.asarray(_ints(key), dtype=np.int64).astype(np.uint32))
    np.random.set_state(('MT19937', key, int(np_state['pos']), int(np_state['has_gauss']), float(np_state['gauss'])))
    py = state['python']
    random.setstate((int(py['version']), tuple(_ints(py['words'])), py['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_byte_tensor(state['cuda']))


class _RestoreAfterSkip:
    """Wraps ``IterBasedTrainLoop.dataloader_iterator``: on resume the loop first fetches the ``skip``
    batches already trained (replaying the sampler, and drawing random augmentations in the main
    process); the generator states are restored after those, right before the first new batch."""

    def __init__(self, loop, skip: int, restore) -> None:
        self.loop, self.iterator, self.skip, self.restore = loop, loop.dataloader_iterator, skip, restore

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip == 0:
            self.restore()
            self.loop.dataloader_iterator = self.iterator  # done: unwrap
            return next(self.iterator)
        self.skip -= 1
        return next(self.iterator)

    def __getattr__(self, name):  # only called for names not set in __init__
        if name == 'iterator':
            raise AttributeError(name)
        return getattr(self.iterator, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every rank's random-number states in each checkpoint and restore them on ``--resume``.

    The states are those right after the last trained iteration (or epoch), taken before
    :class:`~mmengine.hooks.CheckpointHook` saves, under the checkpoint key ``'rng_states'`` as
    bytes and ints (no tensor a ``map_location`` could move), so ``torch.load(..., weights_only=True)`` reads them
    on any device. On resume each rank gets
    its own states back right before its first new batch is fetched, so the resumed run draws the
    same dropout masks, drop-path decisions and augmentations as the uninterrupted one.
    Validation runs between ``before_val`` and ``after_val`` with the training states put back
    afterwards, so the training stream does not depend on whether (or how often) it validates.

    On by default for every config of this package (``configs/_base_/custom_imports.py``)::

        custom_hooks = [dict(type='RNGStateHook')]
    """

    priority = 'LOW'  # after the optimizer step and logging, before CheckpointHook ('VERY_LOW')

    def __init__(self) -> None:
        self._latest: Optional[List[dict]] = None  # every rank's states, gathered for a checkpoint
        self._latest_raw: Optional[tuple] = None  # this rank's states after the last trained iteration
        self._pending: Optional[dict] = None  # states read from a checkpoint, waiting for the resume
        self._before_val: Optional[dict] = None

    # ------------------------------------------------------------------------------------- saving
    def _checkpoint_hooks(self, runner) -> List[CheckpointHook]:
        return [hook for hook in runner.hooks if isinstance(hook, CheckpointHook)]

    def _save_due(self, runner, by_epoch: bool) -> bool:
        """Whether a CheckpointHook saves at this iteration/epoch (only needed to gather ranks)."""
        for hook in self._checkpoint_hooks(runner):
            if hook.by_epoch != by_epoch:
                continue
            if by_epoch and (hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                             or (hook.save_last and hook.is_last_train_epoch(runner))):
                return True
            if not by_epoch and (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                                 or (hook.save_last and hook.is_last_train_iter(runner))):
                return True
        return False

    def _capture(self, gather: bool) -> None:
        self._latest_raw, self._latest = _raw_rng_state(), None
        if gather:  # a collective on every rank, only when a checkpoint will be written (rank 0 writes it)
            self._latest = all_gather_object(_plain_rng_state(self._latest_raw))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._capture(gather=get_world_size() > 1 and self._save_due(runner, by_epoch=False))

    def after_train_epoch(self, runner) -> None:
        self._capture(gather=get_world_size() > 1 and self._save_due(runner, by_epoch=True))

    def after_val_epoch(self, runner, metrics=None) -> None:
        # CheckpointHook may save the best checkpoint now; every rank's training states are needed
        if get_world_size() > 1 and any(hook.save_best for hook in self._checkpoint_hooks(runner)) \
                and self._latest is None and self._before_val is not None:
            self._latest = all_gather_object(self._before_val)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        ranks = self._latest
        if ranks is None and get_world_size() == 1:
            ranks = [_plain_rng_state(self._latest_raw or _raw_rng_state())]
        if ranks is None:  # pragma: no cover - a save outside the hook's schedule under DDP
            print_log('RNGStateHook: no gathered random states for this checkpoint; a resume from it '
                      'restores the seed only', logger='current', level=30)
            return
        checkpoint[CHECKPOINT_KEY] = dict(version=FORMAT_VERSION, world_size=len(ranks), ranks=ranks)

    # ----------------------------------------------------------------------------------- resuming
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY)
        meta = checkpoint.get('meta', {})
        self._pending = None
        if saved is None:
            return
        if saved.get('version') not in READABLE_VERSIONS:
            print_log(f"RNGStateHook: checkpoint random states have format {saved.get('version')!r}, expected "
                      f'one of {READABLE_VERSIONS}; not restored', logger='current', level=30)
            return
        self._pending = dict(saved, iter=meta.get('iter'), epoch=meta.get('epoch'))

    def _resuming(self, runner) -> bool:
        """A checkpoint is loaded and the loop continues from its position (``--resume``, not ``load_from``)."""
        pending = self._pending
        return (pending is not None and (runner.iter > 0 or runner.epoch > 0)
                and runner.iter == pending['iter'] and runner.epoch == pending['epoch'])

    def _restore_pending(self) -> None:
        pending, self._pending = self._pending, None
        world, rank = get_world_size(), get_rank()
        if pending['world_size'] != world:
            print_log(f"RNGStateHook: checkpoint random states are from {pending['world_size']} processes, this "
                      f'run has {world}; not restored (the resumed run draws different random numbers)',
                      logger='current', level=30)
            return
        restore_rng_state(pending['ranks'][rank])
        print_log('RNGStateHook: random-number states restored from the checkpoint', logger='current')

    def before_train_epoch(self, runner) -> None:
        if not self._resuming(runner):
            self._pending = None
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop: restore after its data skip
            loop.dataloader_iterator = _RestoreAfterSkip(loop, runner.iter, self._restore_pending)
        else:
            self._restore_pending()

    # --------------------------------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        self._before_val = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
            self._before_val = None
