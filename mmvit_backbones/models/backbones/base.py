""":class:`PyramidBackbone`, the outside interface every family shares (CONTRACT "Constructor arguments" and
"Forward"): a family sets ``arch_zoo``, builds its stem and the stages its outputs need, and fills the hooks."""
import contextlib
import copy
import inspect
import numbers
import warnings
from abc import ABCMeta
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as torch_checkpoint
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ... import compat
from ..layers.init import init_vit_weights

# mmengine CheckpointLoader schemes of the OpenMMLab/torchvision model zoos: ResNets, VGGs, ..., none of our families
MODEL_ZOO_PREFIXES = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://', 'mmcls://')


class FeatureInfo:
    """The outputs in timm's ``feature_info`` convention, one entry per ``out_indices`` item: ``channels()``,
    ``reduction()``, ``module_name()`` (lists, or one value for ``idx=i``) and ``get_dicts()``."""

    def __init__(self, entries: Sequence[dict]) -> None:
        self.info = [dict(e) for e in entries]
        self.out_indices = tuple(e['index'] for e in self.info)

    def get(self, key: str, idx: Optional[Union[int, Sequence[int]]] = None):
        if idx is None:
            return [e[key] for e in self.info]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]

    def get_dicts(self, keys: Optional[Sequence[str]] = None, idx: Optional[int] = None):
        dicts = [e if keys is None else {k: e[k] for k in keys} for e in self.info]
        return dicts if idx is None else dicts[idx]

    def channels(self, idx: Optional[int] = None):
        return self.get('num_chs', idx)

    def reduction(self, idx: Optional[int] = None):
        return self.get('reduction', idx)

    def module_name(self, idx: Optional[int] = None):
        return self.get('module', idx)

    def __getitem__(self, i: int) -> dict:
        return self.info[i]

    def __len__(self) -> int:
        return len(self.info)

    def __repr__(self) -> str:
        return f'FeatureInfo({self.info})'


class _FreezeOnBuild(ABCMeta):
    """Freezes ``frozen_stages`` once the family's ``__init__`` has returned, before anything (DDP, an optimizer)
    reads the trainable parameters."""

    def __call__(cls, *args, **kwargs):
        model = super().__call__(*args, **kwargs)
        for module in model.frozen_modules():
            module.requires_grad_(False).eval()
        return model


@contextlib.contextmanager
def keep_batchnorm_statistics(module: nn.Module) -> Iterator[None]:
    """Undo the block's updates of training BatchNorm statistics: a checkpointed recomputation counts no batch."""
    buffers = [b for m in module.modules() if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
               for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for own, old in zip(buffers, saved):
                own.copy_(old)


class PyramidBackbone(BaseModule, metaclass=_FreezeOnBuild):
    """Base class of the multi-stage backbones: input checks, the forward over the stages up to the last output,
    freezing, ``norm_eval``, ``with_cp``, the declared outputs and ``init_cfg``. ``frozen_stages``: ``-1`` freezes
    nothing, ``0`` the stem, ``k >= 1`` also what computes the outputs of stages ``0..k-1``."""

    arch_zoo: Dict[str, dict] = {}
    arch_required_keys: Tuple[str, ...] = ()
    arch_defaults: Dict[str, Any] = {}  # what an arch (zoo entry or custom dict) leaves out
    arch_stage_keys: Tuple[str, ...] = ()  # arch keys with one value per stage (see per_stage)
    family: str = ''
    name_prefix: str = ''  # create_backbone's names are '<name_prefix>-<arch>' (e.g. 'twins-svt-base')
    num_stages: int = 4
    stage_strides: Tuple[int, ...] = (4, 8, 16, 32)
    min_input_size: int = 32
    feature_layout: str = 'nchw'  # layout of what forward_stage returns: 'nchw' or 'nhwc'
    onnx_exporter: str = 'dynamo'  # the torch.onnx exporter whose graphs hold at every accepted size
    export_min_input_size: int = min_input_size  # smallest side one exported graph serves (a family may raise it)
    dense_only_modules: Tuple[str, ...] = ()  # modules the ImageNet (classification) models do not have
    stem_module_names: Tuple[str, ...] = ()  # modules before stage 0 (as in named_modules; frozen_stages >= 0)
    init_conv_fan_out: bool = False  # reset_parameters: fan-out normal convolutions (PVT's rule)

    def __init__(self, arch: Union[str, dict], in_channels: int = 3, out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0, frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None, pretrained: Optional[str] = None) -> None:
        super().__init__(init_cfg=self.pretrained_to_init_cfg(pretrained, init_cfg))
        self.arch_settings = self.resolve_arch(arch)
        name = type(self).__name__
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f'{name}: in_channels must be a positive int, got {in_channels!r}')
        if not 0.0 <= float(drop_path_rate) < 1.0:
            raise ValueError(f'{name}: drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        self.in_channels = in_channels
        out_indices = (out_indices, ) if isinstance(out_indices, int) else tuple(out_indices)
        if not out_indices or any(not isinstance(i, int) or not -self.num_stages <= i < self.num_stages
                                  for i in out_indices):
            raise ValueError(f'{name}: out_indices {out_indices} out of range for {self.num_stages} stages')
        self.out_indices = tuple(i % self.num_stages for i in out_indices)
        if len(set(self.out_indices)) != len(out_indices):
            raise ValueError(f'{name}: out_indices {self.out_indices} has duplicates')
        self.last_stage = max(self.out_indices)  # the last stage the forward runs and the family builds
        self.out_strides = tuple(self.stage_strides[i] for i in self.out_indices)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'{name}: frozen_stages {frozen_stages!r} out of range; expected an int in [-1, '
                             f'{self.num_stages}]')
        self.drop_path_rate = float(drop_path_rate)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp

    # ----------------------------------------------------------------------------------- arguments
    def __new__(cls, *args, **kwargs):
        # errors name the config's type (TwinsSVT, not TwinsBackbone) and what it takes; no arguments: copy/pickle
        if args or kwargs:
            signature = inspect.signature(cls.__init__)
            try:
                signature.bind(None, *args, **kwargs)
            except TypeError as error:
                accepted = ', '.join(list(signature.parameters)[1:])
                hint = (' (a config that swaps in this backbone drops the old one\'s arguments with '
                        'backbone=dict(_delete_=True, ...))' if 'unexpected keyword' in str(error) else '')
                raise TypeError(f'{cls.__name__} {error}; {cls.__name__} accepts: {accepted}{hint}') from None
        return super().__new__(cls)

    @classmethod
    def pretrained_to_init_cfg(cls, pretrained: Optional[str],
                               init_cfg: Union[dict, List[dict], None]) -> Union[dict, List[dict], None]:
        """Turn the deprecated ``pretrained=PATH`` into ``init_cfg=dict(type='Pretrained', ...)``."""
        if pretrained is None:
            return init_cfg
        if not isinstance(pretrained, str):
            raise TypeError(f'{cls.__name__}: pretrained must be a checkpoint path or URL (str) or None, '
                            f'got {type(pretrained).__name__} {pretrained!r}')
        if init_cfg is not None:
            raise ValueError(f'{cls.__name__}: got both pretrained={pretrained!r} and init_cfg={init_cfg!r}; '
                             f"give the checkpoint once, as init_cfg=dict(type='Pretrained', checkpoint=...)")
        prefix = next((p for p in MODEL_ZOO_PREFIXES if pretrained.startswith(p)), None)
        if prefix is not None:
            raise ValueError(
                f'{cls.__name__}: pretrained={pretrained!r} names a checkpoint of the {prefix} model zoo, '
                f'which holds other backbones (ResNet, ...), not {cls.__name__} weights. A stock mmseg '
                f'config sets model.pretrained for its ResNet backbone: when you swap in {cls.__name__}, '
                f"set model.pretrained=None and give {cls.__name__}'s weights as backbone.init_cfg="
                f"dict(type='Pretrained', checkpoint=...)")
        warnings.warn(f'{cls.__name__}: pretrained= is deprecated; use '
                      f"init_cfg=dict(type='Pretrained', checkpoint={pretrained!r})", FutureWarning, stacklevel=3)
        return dict(type='Pretrained', checkpoint=pretrained)

    @classmethod
    def resolve_arch(cls, arch: Union[str, dict]) -> dict:
        """Look ``arch`` up in ``arch_zoo`` (case-insensitive) or validate a custom arch dict; fill in
        ``arch_defaults`` and give every ``arch_stage_keys`` value one entry per stage."""
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(f'{cls.__name__}: unknown arch {arch!r}; expected one of '
                                 f'{sorted(cls.arch_zoo)} or a dict with keys {list(cls.arch_required_keys)}')
            arch = cls.arch_zoo[arch.lower()]
        elif not isinstance(arch, dict):
            raise TypeError(f'{cls.__name__}: arch must be a str or a dict, got {type(arch).__name__}')
        missing = [k for k in cls.arch_required_keys if k not in arch]
        if missing:
            raise ValueError(f'{cls.__name__}: custom arch is missing keys {missing}; '
                             f'required keys are {list(cls.arch_required_keys)}')
        settings = copy.deepcopy({**cls.arch_defaults, **arch})
        for key in cls.arch_stage_keys:
            if settings.get(key) is not None:
                settings[key] = cls.per_stage(f'arch {key}', settings[key], numbers.Real)
        return settings

    @classmethod
    def per_stage(cls, name: str, value, kind: type = int) -> tuple:
        """``value`` as one positive ``kind`` per stage (a single one: the same in every stage)."""
        values = (value, ) * cls.num_stages if isinstance(value, (int, float)) else tuple(value or ())
        if len(values) != cls.num_stages or not all(isinstance(v, kind) and v > 0 for v in values):
            what = 'int' if kind is int else 'number'
            raise ValueError(f'{cls.__name__}: {name} {value!r} must be a positive {what} or {cls.num_stages} '
                             f'positive {what}s, one per stage')
        return values

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for an input the backbone cannot take (rank, channels, size, dtype, device) before
        any layer runs. NaN/Inf values propagate."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f'{name}: expected an input of shape (B, {self.in_channels}, H, W), got {shape}')
        self.check_input_dtype_device(x)
        if x.shape[1] != self.in_channels:
            raise ValueError(f'{name}: input has {x.shape[1]} channels, expected in_channels={self.in_channels} '
                             f'(input shape {tuple(x.shape)})')
        if min(x.shape[2:]) < self.min_input_size:
            raise ValueError(f'{name}: input size {tuple(x.shape[2:])} is smaller than the minimum '
                             f'{self.min_input_size}x{self.min_input_size}')

    def check_input_dtype_device(self, x: torch.Tensor) -> None:
        """The weights' device and dtype; under autocast any floating dtype but float64 (not cast down)."""
        weight = None
        for weight in self.parameters():  # the first parameter (torch 2.1's dynamo cannot trace next(it, None))
            break
        if weight is None:
            return
        name = type(self).__name__
        if x.device != weight.device:
            raise ValueError(f'{name}: input is on {x.device} but the weights are on {weight.device}; move one '
                             f'to the other (x.to({str(weight.device)!r}) or model.to({str(x.device)!r}))')
        if not x.is_floating_point():
            raise TypeError(f'{name}: input dtype {x.dtype} is not a floating type; the weights are '
                            f'{weight.dtype}. Convert images to float and normalise them first (mmdet/mmseg '
                            f'data preprocessors do), e.g. x.to({weight.dtype})')
        autocast = x.dtype != weight.dtype and compat.autocast_enabled(x.device.type)
        if x.dtype != weight.dtype and (not autocast or x.dtype == torch.float64):
            hint = ('; autocast does not cast float64 down' if autocast else
                    f', or run mixed precision under torch.autocast({x.device.type!r}, dtype=...)')
            raise TypeError(f'{name}: input dtype {x.dtype} does not match the weights ({weight.dtype}); cast '
                            f'the input (x.to({weight.dtype})) or the model (model.to({x.dtype})){hint}')

    # ----------------------------------------------------------------------- declared outputs, export
    @property
    def feature_info(self) -> FeatureInfo:
        """timm's ``feature_info`` for the outputs: channels, reduction and the module that makes each map."""
        names = {id(m): n for n, m in self.named_modules()}
        return FeatureInfo(dict(num_chs=c, reduction=s, module=names.get(id(self.stage_modules(i)[-1]), ''), index=i)
                           for i, c, s in zip(self.out_indices, self.out_channels, self.out_strides))

    @property
    def export_example_min_size(self) -> int:
        """Smallest side of the example input (``torch.export`` specialises a size that is 1 in the example)."""
        return self.export_min_input_size

    # ------------------------------------------------------------------------ the ImageNet models
    @classmethod
    def classification_settings(cls, arch: Union[str, dict]) -> dict:
        """Constructor arguments that give ``arch`` its ImageNet geometry at 224x224 (for the papers' tables)."""
        return {}

    def classification_only_macs(self, img_size: int, num_classes: int = 1000) -> int:
        """MACs of the ImageNet-only layers at ``img_size``: the classifier (norms and pooling are element-wise)."""
        return max(self.out_channels) * num_classes

    def counting_paths(self):
        """The forward's paths for FLOP counting (reference paths where a fast path hides MACs in element-wise ops)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------------------------ hooks to fill
    def forward_stem(self, x: torch.Tensor) -> Any:
        """The stem on the (checked) image; returns what :meth:`forward_stage` ``(0, ...)`` takes (by default the
        image: a stem that is part of stage 0)."""
        return x

    def forward_stage(self, index: int, x: Any) -> Tuple[Any, Optional[torch.Tensor]]:
        """Stage ``index`` on the previous stage's state: ``(state for the next stage, feature map)``, the map in
        ``feature_layout`` before the output norm (None allowed for a stage whose output is not returned)."""
        raise NotImplementedError

    def stage_blocks(self, index: int) -> Sequence[nn.Module]:
        """The transformer blocks of stage ``index`` in order (what analysis tools hook into)."""
        raise NotImplementedError

    def output_norm(self, index: int) -> Optional[nn.Module]:
        """The norm applied to stage ``index``'s feature map before it is returned (None: no norm)."""
        return None

    def stage_module_names(self, index: int) -> List[str]:
        """Names of the modules that compute stage ``index``'s output, built or not (see ``is_unbuilt_key``)."""
        return []

    # --------------------------------------------------------------------------------- structure
    def _resolve(self, names: Sequence[str]) -> List[nn.Module]:
        modules = []
        for name in names:
            with contextlib.suppress(AttributeError):  # not built (get_submodule also refuses None)
                modules.append(self.get_submodule(name))
        return modules

    def stem_modules(self) -> List[nn.Module]:
        """Modules before stage 0."""
        return self._resolve(self.stem_module_names)

    def stage_modules(self, index: int) -> List[nn.Module]:
        """The built modules that compute stage ``index``'s output."""
        return self._resolve(self.stage_module_names(index))

    def is_unbuilt_key(self, key: str) -> bool:
        """Whether checkpoint ``key`` belongs to a module a full-depth backbone has but this one does not build (the
        loader reports such keys and ignores them)."""
        names = [name for index in range(self.num_stages) for name in self.stage_module_names(index)]
        return key.startswith(tuple(name + '.' for name in names if not self._resolve([name])))

    # ------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """A tuple of NCHW maps, one per entry of ``out_indices`` (CONTRACT "Forward")."""
        self.check_input(x)
        state = self.forward_stem(x)
        outs = {}
        for index in range(self.last_stage + 1):
            state, feature = self.forward_stage(index, state)
            if index in self.out_indices:
                norm = self.output_norm(index)
                feature = feature if norm is None else norm(feature)
                outs[index] = (feature.permute(0, 3, 1, 2) if self.feature_layout == 'nhwc' else feature).contiguous()
        return tuple(outs[i] for i in self.out_indices)

    # --------------------------------------------------------------------- training-time behaviour
    def frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return self.stem_modules() + [m for i in range(self.frozen_stages) for m in self.stage_modules(i)]

    def train(self, mode: bool = True) -> 'PyramidBackbone':
        """Train mode, with frozen stages (and with ``norm_eval`` every BatchNorm) kept in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def run_checkpointed(self, fn: nn.Module, *args):
        """``fn(*args)``, checkpointed (non-reentrant, BatchNorm statistics counted once) when ``with_cp`` applies."""
        if not (self.with_cp and self.training and torch.is_grad_enabled()):
            return fn(*args)
        calls = []  # a second call is the recomputation (torch.compile rejects a closure as checkpoint's context_fn)

        def run(*inputs):
            if not calls:
                calls.append(True)
                return fn(*inputs)
            with keep_batchnorm_statistics(fn):
                return fn(*inputs)

        return torch_checkpoint.checkpoint(run, *args, use_reentrant=False)

    def run_blocks(self, blocks: Iterable[nn.Module], x: torch.Tensor, *args) -> torch.Tensor:
        """Apply ``blocks`` in sequence (``x = block(x, *args)``), each checkpointed when ``with_cp``."""
        for block in blocks:
            x = self.run_checkpointed(block, x, *args)
        return x

    # ------------------------------------------------------------------------------ initialisation
    def reset_parameters(self) -> None:
        """The random initialisation (also under a checkpoint, for what it does not hold): the ViT papers' shared
        rule (:func:`init_vit_weights`), to which a family adds its own parameters'."""
        init_vit_weights(self, conv_fan_out=self.init_conv_fan_out)

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            from mmvit_backbones.checkpoint import load_pretrained
            if 'checkpoint' not in cfg:
                raise ValueError(f"{type(self).__name__}: init_cfg of type 'Pretrained' needs a 'checkpoint' "
                                 f'path, got {cfg}')
            self.reset_parameters()  # parameters the checkpoint does not hold (e.g. new output norms)
            load_pretrained(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                            map_location=cfg.get('map_location', 'cpu'), sha256=cfg.get('sha256'),
                            check_hash=cfg.get('check_hash', False))
            self._is_init = True
            return
        if not self._is_init:
            self.reset_parameters()
        super().init_weights()
        if cfg is None:
            print_log(f'{type(self).__name__}: no init_cfg, random initialisation', logger='current')
