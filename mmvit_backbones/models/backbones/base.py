"""The outside interface every family shares (CONTRACT "Constructor arguments" and "Forward").

A family subclasses :class:`PyramidBackbone`, sets ``arch_zoo``/``family``, builds its layers, and
implements :meth:`stem_modules`, :meth:`stage_modules` and ``forward``. The base class owns what a
user of mmdet's Swin expects to behave the same everywhere: arch resolution, argument and input
validation, ``frozen_stages``, ``norm_eval``, ``with_cp`` (non-reentrant) and ``init_cfg`` loading
with key conversion.
"""
import copy
from typing import Dict, Iterable, List, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as torch_checkpoint
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class PyramidBackbone(BaseModule):
    """Base class of the multi-stage backbones (strides 4/8/16/32, NCHW outputs).

    Args:
        arch: a key of ``arch_zoo`` or a dict with at least ``arch_required_keys``.
        in_channels: channels of the input image.
        out_indices: stages whose outputs are returned, in this order.
        drop_path_rate: stochastic-depth rate.
        frozen_stages: ``-1`` freezes nothing; ``0`` freezes the stem; ``k >= 1`` also freezes
            every parameter that computes the outputs of stages ``0..k-1`` (their output norms included).
        norm_eval: keep BatchNorm layers in eval mode (frozen running stats) during training.
        with_cp: gradient checkpointing per block (``use_reentrant=False``, safe under DDP).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads the
            authors' checkpoints with key conversion (see :mod:`mmvit_backbones.checkpoint`).
    """

    arch_zoo: Dict[str, dict] = {}
    arch_required_keys: Tuple[str, ...] = ()
    family: str = ''
    num_stages: int = 4
    min_input_size: int = 32

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self.resolve_arch(arch)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{type(self).__name__}: in_channels must be a positive int, got {in_channels!r}')
        if not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f'{type(self).__name__}: drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        self.in_channels = in_channels
        self.out_indices = self.check_out_indices(out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'{type(self).__name__}: frozen_stages {frozen_stages!r} out of range; expected an '
                             f'int in [-1, {self.num_stages}]')
        self.drop_path_rate = float(drop_path_rate)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    # ----------------------------------------------------------------------------------- arguments
    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> dict:
        """Look ``arch`` up in ``arch_zoo`` (case-insensitive) or validate a custom arch dict."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ValueError(f'{cls.__name__}: unknown arch {arch!r}; expected one of '
                                 f'{sorted(cls.arch_zoo)} or a dict with keys {list(cls.arch_required_keys)}')
            return copy.deepcopy(cls.arch_zoo[key])
        if isinstance(arch, dict):
            missing = [k for k in cls.arch_required_keys if k not in arch]
            if missing:
                raise ValueError(f'{cls.__name__}: custom arch is missing keys {missing}; '
                                 f'required keys are {list(cls.arch_required_keys)}')
            return copy.deepcopy(dict(arch))
        raise TypeError(f'{cls.__name__}: arch must be a str or a dict, got {type(arch).__name__}')

    def check_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        out_indices = tuple(out_indices)
        bad = [i for i in out_indices if not isinstance(i, int) or not -self.num_stages <= i < self.num_stages]
        if not out_indices or bad:
            raise ValueError(f'{type(self).__name__}: out_indices {out_indices} out of range for '
                             f'{self.num_stages} stages')
        out_indices = tuple(i % self.num_stages for i in out_indices)
        if len(set(out_indices)) != len(out_indices):
            raise ValueError(f'{type(self).__name__}: out_indices {out_indices} has duplicates')
        return out_indices

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for inputs the backbone cannot take (wrong rank, channels, too small)."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f'{type(self).__name__}: expected an input of shape (B, {self.in_channels}, H, W), '
                             f'got {shape}')
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__}: input has {x.shape[1]} channels, expected in_channels='
                             f'{self.in_channels} (input shape {tuple(x.shape)})')
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f'{type(self).__name__}: input size {tuple(x.shape[2:])} is smaller than the '
                             f'minimum {self.min_input_size}x{self.min_input_size}')

    # ------------------------------------------------------------------------------ hooks to fill
    def stem_modules(self) -> List[nn.Module]:
        """Modules before stage 0 (frozen when ``frozen_stages >= 0``)."""
        raise NotImplementedError

    def stage_modules(self, index: int) -> List[nn.Module]:
        """Modules that compute stage ``index``'s output (frozen when ``frozen_stages > index``)."""
        raise NotImplementedError

    # --------------------------------------------------------------------- training-time behaviour
    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules: List[nn.Module] = list(self.stem_modules())
        for i in range(self.frozen_stages):
            modules += list(self.stage_modules(i))
        for module in modules:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'PyramidBackbone':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def run_checkpointed(self, fn, *args):
        """``fn(*args)``, through non-reentrant gradient checkpointing when ``with_cp`` applies."""
        if self.with_cp and self.training and torch.is_grad_enabled():
            return torch_checkpoint.checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def run_blocks(self, blocks: Iterable[nn.Module], x: torch.Tensor, *args) -> torch.Tensor:
        """Apply ``blocks`` in sequence (``x = block(x, *args)``), each checkpointed when ``with_cp``."""
        for block in blocks:
            x = self.run_checkpointed(block, x, *args)
        return x

    # ------------------------------------------------------------------------------ initialisation
    def reset_parameters(self) -> None:
        """The family's own random initialisation (used when no checkpoint is given)."""

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            from mmvit_backbones.checkpoint import load_pretrained
            if 'checkpoint' not in cfg:
                raise ValueError(f"{type(self).__name__}: init_cfg of type 'Pretrained' needs a 'checkpoint' "
                                 f'path, got {cfg}')
            self.reset_parameters()  # parameters the checkpoint does not hold (e.g. new output norms)
            load_pretrained(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                            map_location=cfg.get('map_location', 'cpu'))
            self._is_init = True
            return
        if not self._is_init:
            self.reset_parameters()
        super().init_weights()
        if cfg is None:
            print_log(f'{type(self).__name__}: no init_cfg, random initialisation', logger='current')
