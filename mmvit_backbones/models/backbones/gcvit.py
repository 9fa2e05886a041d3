"""GC ViT (Hatamizadeh et al., "Global Context Vision Transformers", ICML 2023, arXiv:2206.09959).

Every stage alternates local window attention (Sec. 3.2, Eq. 1) with *global* window attention whose
queries come from a per-stage global token map (Sec. 3.3, Fig. 5), made once from the stage input by a
CNN "global query generator" (fused-MBConv blocks with squeeze-excitation and max-pooling). Stem and
downsampling are fused-MBConv blocks with strided convolutions.

Dense semantics of the authors' ``detection/models/gc_vit.py``: window 24 in every stage (relative-position
tables resized bicubically on load, :mod:`mmvit_backbones.checkpoint.gcvit`), the global query pooled to
about 1/32 of the image and resized bicubically to the window grid, zero padding (no attention mask) to a
window multiple, and a LayerNorm on each returned stage output, taken *before* its downsampling.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from mmengine.registry import MODELS
from torch import nn

from ...checkpoint.facts import GCVIT_GLOBAL_QUERY_SPLITS as GLOBAL_QUERY_SPLITS  # head split per release
from ...utils.tracing import is_tracing
from ..layers.attention import softmax_attention
from ..layers.attention_maps import grouped_attention_map
from ..layers.drop import DropPath, drop_path_schedule
from ..layers.linear import Linear
from ..layers.mlp import Mlp
from ..layers.padding import pad_nhwc
from ..layers.relative_position import relative_position_index
from ..layers.windows import group_partition, group_reverse
from .base import PyramidBackbone

# Number of FeatExtract blocks of each stage's global query generator (log2 of the stage's
# downsampling to the 1/32 grid at the 224 pretraining size; paper Fig. 5).
GLOBAL_QUERY_DEPTHS = (3, 2, 1, 1)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al.) on NCHW maps: avg-pool, FC(C->C/4)-GELU-FC-sigmoid, rescale."""

    def __init__(self, dim: int, ratio: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc = nn.Sequential(nn.Linear(dim, hidden, bias=False), nn.GELU(),
                                nn.Linear(hidden, dim, bias=False), nn.Sigmoid())

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        scale = self.fc(x_nchw.mean((2, 3)))  # (B, C)
        return x_nchw * scale[:, :, None, None]


def fused_mbconv(dim: int) -> nn.Sequential:
    """The residual branch of the paper's fused-MBConv (Eq. 6): DWConv3x3, GELU, SE, Conv1x1."""
    return nn.Sequential(nn.Conv2d(dim, dim, 3, 1, 1, groups=dim, bias=False), nn.GELU(), SqueezeExcite(dim),
                         nn.Conv2d(dim, dim, 1, 1, 0, bias=False))


class ReduceSize(nn.Module):
    """Downsampling (paper Eq. 6-7): LN, ``x + fused_mbconv(x)``, strided Conv3x3, LN. NHWC in and out."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.conv = fused_mbconv(dim)
        self.reduction = nn.Conv2d(dim, out_dim, 3, 2, 1, bias=False)
        self.norm2 = nn.LayerNorm(out_dim)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x_nchw = self.norm1(x_nhwc).permute(0, 3, 1, 2)
        x_nchw = x_nchw + self.conv(x_nchw)
        x_nhwc = self.reduction(x_nchw).permute(0, 2, 3, 1)
        return self.norm2(x_nhwc)


class PatchEmbed(nn.Module):
    """Overlapping stem, stride 4: Conv3x3 s2 then a channel-keeping :class:`ReduceSize`. NCHW -> NHWC."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, 2, 1)
        self.conv_down = ReduceSize(dim, dim)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.conv_down(self.proj(x_nchw).permute(0, 2, 3, 1))


class FeatExtract(nn.Module):
    """One global-query-generator step (paper Eq. 8): ``x + fused_mbconv(x)``, then an optional
    MaxPool3x3 s2 (output ``ceil(H/2)``). NCHW in and out."""

    def __init__(self, dim: int, pool: bool) -> None:
        super().__init__()
        self.conv = fused_mbconv(dim)
        self.pool = nn.MaxPool2d(3, 2, 1) if pool else nn.Identity()

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.pool(x_nchw + self.conv(x_nchw))


class GlobalQueryGen(nn.Module):
    """Global query tokens of a stage (Sec. 3.3): FeatExtract steps down to about 1/32 of the image,
    resized bicubically to the ``window x window`` grid (the dense code's rule, so any input size works),
    split into heads as ``split`` says. Returns ``(B, heads, window*window, head_dim)``."""

    def __init__(self, dim: int, num_heads: int, window_size: int, pools: Sequence[bool]) -> None:
        super().__init__()
        self.to_q_global = nn.Sequential(*[FeatExtract(dim, pool) for pool in pools])
        self.num_heads = num_heads
        self.window_size = window_size

    def forward(self, x_nchw: torch.Tensor, split: str) -> torch.Tensor:
        q_nchw = self.to_q_global(x_nchw)
        b, c, h, w = q_nchw.shape
        ws = self.window_size
        if is_tracing() or (h, w) != (ws, ws):  # traced: resize always (the identity at ws x ws)
            q_nchw = F.interpolate(q_nchw, size=(ws, ws), mode='bicubic', align_corners=False)
        # 'channels_first' (2022-07-26 weights): the NCHW buffer read as (N, heads, head_dim)
        q = q_nchw.permute(0, 2, 3, 1) if split == 'channels_last' else q_nchw
        return q.reshape(b, ws * ws, self.num_heads, c // self.num_heads).transpose(1, 2)  # (B, heads, N, head_dim)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows with a relative-position bias (Sec. 3.2).

    Local blocks project q, k, v from the window tokens; global blocks (``is_global=True``) project only
    k, v (``qkv``, the authors' key name, has ``2 * dim`` outputs) and take q from the stage's global
    query, shared by every window of the image.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, is_global: bool, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = window_size
        self.is_global = is_global
        self.qkv = Linear(dim, dim * (2 if is_global else 3), bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(window_size, window_size),
                             persistent=False)

    def relative_position_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """``(heads, N, N)`` bias gathered from the table. Not cached: with window 24 the gathered biases of
        GC ViT-T alone take 337 MB (four times the weights), while the gather is a small part of a forward."""
        n = self.window_size ** 2
        table = self.relative_position_bias_table.t().contiguous()  # (heads, (2w-1)^2), small
        bias = table.index_select(1, self.relative_position_index.view(-1))  # contiguous (heads, N*N)
        return bias.view(-1, n, n).to(dtype)

    def forward(self, windows: torch.Tensor, q_global: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``windows``: ``(B*nW, N, C)``, window-major within each image; ``q_global``:
        ``(B, heads, N, head_dim)`` for global blocks."""
        bw, n, c = windows.shape
        parts = 2 if self.is_global else 3
        qkv = self.qkv(windows).view(bw, n, parts, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.is_global:
            k, v = qkv.unbind(0)
            b = q_global.shape[0]
            per_image = bw // b if b else 0  # windows per image (an empty batch has none)
            q = q_global.unsqueeze(1).expand(b, per_image, -1, -1, -1).reshape(bw, self.num_heads, n, self.head_dim)
        else:
            q, k, v = qkv.unbind(0)
        out = softmax_attention(q, k, v, self.relative_position_bias(q.dtype).unsqueeze(0))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class GCViTBlock(nn.Module):
    """Pre-norm transformer block on NHWC maps (Sec. 3.1) with optional layer scale:
    ``x + gamma1 * Attn(LN(x))`` then ``x + gamma2 * MLP(LN(x))``. The normalised map is zero-padded
    bottom/right to a multiple of the window (no attention mask, as the authors' dense code) and
    cropped back."""

    def __init__(self, dim: int, num_heads: int, window_size: int, is_global: bool, mlp_ratio: float,
                 drop_path: float = 0.0, layer_scale: Optional[float] = None, qkv_bias: bool = True) -> None:
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, is_global, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        with_scale = layer_scale is not None
        self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale))) if with_scale else None
        self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale))) if with_scale else None

    def forward(self, x_nhwc: torch.Tensor, q_global: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x_nhwc.shape
        ws = self.window_size
        padded, pad_b, pad_r = pad_nhwc(self.norm1(x_nhwc), ws, ws)
        windows = group_partition(padded, ws, ws)  # (B*nW, ws*ws, C)
        windows = self.attn(windows, q_global if self.attn.is_global else None)
        attn_nhwc = group_reverse(windows, ws, ws, 1, h + pad_b, w + pad_r)
        if is_tracing() or pad_b or pad_r:
            attn_nhwc = attn_nhwc[:, :h, :w]
        x_nhwc = x_nhwc + self.drop_path(self._scale(attn_nhwc, self.gamma1))
        return x_nhwc + self.drop_path(self._scale(self.mlp(self.norm2(x_nhwc)), self.gamma2))

    def attention_map(self, inputs: tuple, probs: torch.Tensor) -> dict:
        """The centre query's attention (analysis), from the recorded window attention ``probs``."""
        _, h, w, _ = inputs[0].shape
        ws = self.window_size
        kind = 'global' if self.attn.is_global else 'local'
        return grouped_attention_map(probs, h, w, ws, ws, 1, f'{kind} window attention ({ws}x{ws} windows)')

    @staticmethod
    def _scale(x: torch.Tensor, gamma: Optional[torch.Tensor]) -> torch.Tensor:
        return x if gamma is None else x * gamma


class GCViTStage(nn.Module):
    """One stage: the global query generator (run once on the stage input), ``depth`` blocks alternating
    local (even) and global (odd) attention, and the downsampling to the next stage."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float,
                 query_pools: Sequence[bool], drop_paths: Sequence[float], layer_scale: Optional[float],
                 downsample: bool, qkv_bias: bool = True) -> None:
        super().__init__()
        # a one-block stage has no global block, so no query generator (it would be an unused parameter)
        self.q_global_gen = GlobalQueryGen(dim, num_heads, window_size, query_pools) if depth > 1 else None
        self.blocks = nn.ModuleList([
            GCViTBlock(dim, num_heads, window_size, is_global=(j % 2 == 1), mlp_ratio=mlp_ratio,
                       drop_path=drop_paths[j], layer_scale=layer_scale, qkv_bias=qkv_bias)
            for j in range(depth)
        ])
        self.downsample = ReduceSize(dim, 2 * dim) if downsample else None


@MODELS.register_module()
class GCViT(PyramidBackbone):
    """GC ViT dense-prediction backbone (strides 4/8/16/32, channels ``embed_dims * 2**i``).

    Args (after those of :class:`PyramidBackbone`; ``drop_path_rate`` defaults to the authors' dense 0.2):
        arch: a key of ``arch_zoo`` or a dict with the keys of its entries (``layer_scale`` optional).
        window_size: attention window per stage (int or 4 ints); 24 in the authors' dense code.
        global_query_split: how the global query is split into heads; ``'channels_last'`` for every
            checkpoint released since 2022-08-11 and the authors' detection checkpoints,
            ``'channels_first'`` for the 2022-07-26 ImageNet release (trained before the upstream fix).
            A checkpoint saved by this package records it and overrides this value on load.
        pretrain_img_size: the pretraining image size; stage 2's global query generator keeps its
            resolution when the stage-2 window equals ``pretrain_img_size // 16`` and max-pools otherwise.
        qkv_bias: bias in the q/k/v projections.
    """
    family = 'gcvit'
    name_prefix = 'gcvit'
    feature_layout = 'nhwc'
    stem_module_names = ('patch_embed',)
    # torch.export cannot yet prove its window reshapes for every size (divisibility guards)
    onnx_exporter = 'torchscript'
    arch_required_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratio')
    arch_stage_keys = ('depths', 'num_heads')
    arch_zoo = {
        'xxtiny': dict(embed_dims=64, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), mlp_ratio=3.0),
        'xtiny': dict(embed_dims=64, depths=(3, 4, 6, 5), num_heads=(2, 4, 8, 16), mlp_ratio=3.0),
        'tiny': dict(embed_dims=64, depths=(3, 4, 19, 5), num_heads=(2, 4, 8, 16), mlp_ratio=3.0),
        'tiny2': dict(embed_dims=64, depths=(3, 4, 29, 5), num_heads=(2, 4, 8, 16), mlp_ratio=3.0),
        'small': dict(embed_dims=96, depths=(3, 4, 19, 5), num_heads=(3, 6, 12, 24), mlp_ratio=2.0, layer_scale=1e-5),
        'small2': dict(embed_dims=96, depths=(3, 4, 23, 5), num_heads=(3, 6, 12, 24), mlp_ratio=3.0, layer_scale=1e-5),
        'base': dict(embed_dims=128, depths=(3, 4, 19, 5), num_heads=(4, 8, 16, 32), mlp_ratio=2.0, layer_scale=1e-5),
        'large': dict(embed_dims=192, depths=(3, 4, 19, 5), num_heads=(6, 12, 24, 48), mlp_ratio=2.0, layer_scale=1e-5),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.2,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None,
                 window_size: Union[int, Sequence[int]] = 24,
                 global_query_split: str = 'channels_last',
                 pretrain_img_size: int = 224,
                 qkv_bias: bool = True,
                 pretrained: Optional[str] = None) -> None:
        super().__init__(arch, in_channels, out_indices, drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained=pretrained)
        settings = self.arch_settings
        dims = [int(settings['embed_dims']) * 2 ** i for i in range(self.num_stages)]
        depths, num_heads = settings['depths'], settings['num_heads']
        windows = self.per_stage('window_size', window_size)
        self.embed_dims = dims
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.window_size = windows
        self.layer_scale = settings.get('layer_scale')
        # stage 2 pools unless its window equals its 1/16 pretraining grid (authors' GlobalQueryGen)
        query_pools = ((True, ) * GLOBAL_QUERY_DEPTHS[0], (True, ) * GLOBAL_QUERY_DEPTHS[1],
                       (windows[2] != pretrain_img_size // 16, ), (False, ))
        drop_paths = drop_path_schedule(self.drop_path_rate, depths)

        self.patch_embed = PatchEmbed(in_channels, dims[0])
        self.levels = nn.ModuleList([
            GCViTStage(dims[i], depths[i], num_heads[i], windows[i], float(settings['mlp_ratio']),
                       query_pools[i], drop_paths[i], self.layer_scale, downsample=i < self.last_stage,
                       qkv_bias=qkv_bias)
            for i in range(self.last_stage + 1)
        ])
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(dims[i]))
        # Records the head split in our own checkpoints so that loading one restores it.
        self.register_buffer('global_query_split_code', torch.tensor(0), persistent=True)
        self.set_global_query_split(global_query_split)

    # ------------------------------------------------------------------------ weight generations
    def set_global_query_split(self, split: str) -> None:
        """Switch every stage to ``split`` (one of :data:`GLOBAL_QUERY_SPLITS`)."""
        if split not in GLOBAL_QUERY_SPLITS:
            raise ValueError(f'GCViT: global_query_split {split!r} is not one of {GLOBAL_QUERY_SPLITS}')
        self.global_query_split = split
        self.global_query_split_code.fill_(GLOBAL_QUERY_SPLITS.index(split))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        code = int(self.global_query_split_code)  # once per load, never per forward
        if not 0 <= code < len(GLOBAL_QUERY_SPLITS):
            raise ValueError(f'GCViT: global_query_split_code {code} in the checkpoint is not one of '
                             f'{list(range(len(GLOBAL_QUERY_SPLITS)))}')
        self.set_global_query_split(GLOBAL_QUERY_SPLITS[code])

    # ------------------------------------------------------------------------------ structure
    @classmethod
    def classification_settings(cls, arch: Union[str, dict]) -> dict:
        return dict(window_size=(7, 7, 14, 7))  # dense: 24 in every stage

    def stage_module_names(self, index: int) -> List[str]:
        """Stage ``index``'s output depends on the previous downsampling, its global query
        generator, its blocks and its output norm."""
        names = [f'levels.{index}.blocks', f'levels.{index}.q_global_gen', f'norm{index}']
        return ([f'levels.{index - 1}.downsample'] if index > 0 else []) + names

    def stage_blocks(self, index: int) -> nn.ModuleList:
        return self.levels[index].blocks

    def output_norm(self, index: int) -> nn.Module:
        return getattr(self, f'norm{index}')

    def reset_parameters(self) -> None:
        """The authors' init: trunc-normal(0.02) linears and relative-position tables, unit LayerNorms."""
        super().reset_parameters()
        for module in self.modules():
            if isinstance(module, WindowAttention):
                trunc_normal_(module.relative_position_bias_table, std=0.02)

    # ------------------------------------------------------------------------------- forward
    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)  # (B, H/4, W/4, C)

    def forward_stage(self, index: int, x_nhwc: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if index > 0:
            x_nhwc = self.levels[index - 1].downsample(x_nhwc)
        stage = self.levels[index]
        q_global = None if stage.q_global_gen is None else \
            stage.q_global_gen(x_nhwc.permute(0, 3, 1, 2), self.global_query_split)
        x_nhwc = self.run_blocks(stage.blocks, x_nhwc, q_global)
        return x_nhwc, x_nhwc  # the stage output before its downsampling
