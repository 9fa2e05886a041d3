"""Exact resume: the random-number states travel with the checkpoint (docs/reliability.md).

mmengine 0.10.7 resumes the model, optimizer, schedulers, message hub, seed and data order, but not the global
generators that dropout, drop-path and random augmentations draw from, so a resumed run is a different run.
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


def _cpu(value):
    """A tensor (format 1 holds its states as tensors, which a ``map_location`` may have moved to the GPU) as a
    CPU NumPy array; anything else as it is."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


def _plain_rng_state(raw: tuple) -> dict:
    """``raw`` as bytes, ints and floats only: loadable with ``weights_only=True``, and with no tensor that a
    ``map_location`` could move to another device (mmengine resumes with the GPU as ``map_location``)."""
    torch_state, np_state, (version, py_words, gauss), cuda = raw
    if np_state['bit_generator'] != 'MT19937':  # pragma: no cover - np.random's global is always MT19937
        raise RuntimeError(f"RNGStateHook: unexpected numpy bit generator {np_state['bit_generator']!r}")
    state = dict(
        torch=_cpu(torch_state).tobytes(),
        numpy=dict(key=np_state['state']['key'].astype(np.uint32).tobytes(), pos=int(np_state['state']['pos']),
                   has_gauss=int(np_state['has_gauss']), gauss=float(np_state['gauss'])),
        python=dict(version=int(version), words=[int(w) for w in py_words],
                    gauss=None if gauss is None else float(gauss)))
    if cuda is not None:
        state['cuda'] = _cpu(cuda).tobytes()
    return state


def capture_rng_state() -> dict:
    """This process's generator states as bytes and ints only (loadable with ``weights_only=True``): torch CPU
    (and the current CUDA device's where CUDA is initialised), NumPy's global ``MT19937`` and Python's ``random``."""
    return _plain_rng_state(_raw_rng_state())


def _byte_tensor(value) -> torch.Tensor:
    """A generator state as the CPU ``uint8`` tensor torch wants, from bytes (format 2) or a tensor (format 1)."""
    return torch.frombuffer(bytearray(_cpu(value)), dtype=torch.uint8)


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`; also reads format-1 states (tensors, on any device)."""
    torch.set_rng_state(_byte_tensor(state['torch']))
    np_state = state['numpy']
    key = _cpu(np_state['key'])  # format 1: int64 values; format 2: uint32 bytes
    key = np.frombuffer(key, dtype=np.uint32).copy() if isinstance(key, (bytes, bytearray)) else key.astype(np.uint32)
    np.random.set_state(('MT19937', key, int(np_state['pos']), int(np_state['has_gauss']), float(np_state['gauss'])))
    py = state['python']
    random.setstate((int(py['version']), tuple(int(w) for w in _cpu(py['words'])), py['gauss']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_byte_tensor(state['cuda']))


def _restore_after_skip(loop, iterator, skip: int, restore):
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator``: on resume the loop first fetches the ``skip``
    batches already trained (replaying the sampler, and drawing random augmentations in the main process); the
    generator states are restored after those, right before the first new batch."""
    for _ in range(skip):
        yield next(iterator)
    restore()
    loop.dataloader_iterator = iterator  # done: unwrap
    yield next(iterator)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every rank's random-number states (right after the last trained iteration or epoch) in each checkpoint
    under ``'rng_states'`` and give each rank its own back on ``--resume`` right before its first new batch, so the
    resumed run draws the same dropout masks, drop-path decisions and augmentations as the uninterrupted one.
    Validation puts the training states back afterwards, so the training stream does not depend on whether (or how
    often) it validates. On for every config of this package (``configs/_base_/custom_imports.py``).
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
            every, last = ((hook.every_n_epochs, hook.is_last_train_epoch) if by_epoch else
                           (hook.every_n_train_iters, hook.is_last_train_iter))
            if hook.by_epoch == by_epoch and (every(runner, hook.interval, hook.save_begin)
                                              or (hook.save_last and last(runner))):
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
        saved, meta = checkpoint.get(CHECKPOINT_KEY), checkpoint.get('meta', {})
        self._pending = None
        if saved is not None and saved.get('version') not in READABLE_VERSIONS:
            print_log(f"RNGStateHook: checkpoint random states have format {saved.get('version')!r}, expected "
                      f'one of {READABLE_VERSIONS}; not restored', logger='current', level=30)
        elif saved is not None:
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
            loop.dataloader_iterator = _restore_after_skip(loop, loop.dataloader_iterator, runner.iter,
                                                           self._restore_pending)
        else:
            self._restore_pending()

    # --------------------------------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        self._before_val = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_rng_state(self._before_val)
            self._before_val = None
