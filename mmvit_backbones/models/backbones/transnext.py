"""TransNeXt (Shi, "TransNeXt: Robust Foveal Visual Perception for Vision Transformers", CVPR 2024)
as a dense-prediction backbone with the semantics of the authors' detection/segmentation code.

Stages 1-3 mix tokens with aggregated attention (3x3 sliding window + pooled map in one softmax, Sec. 3.2),
stage 4 with full attention; both are length-scaled cosine attentions with a query embedding and a
log-spaced continuous position bias. The channel mixer is Convolutional GLU (Sec. 3.3). Every stage output
is layer-normalised and fed, normalised, to the next stage. Parameter names are the authors'
(``patch_embed{i}``, ``block{i}.{j}``, ``norm{i}``), so their state dicts and optimizer ``custom_keys`` apply.
"""
import contextlib
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from ...ops.aggregated_attention import ATTN_IMPLS, aggregated_attention, length_scaled_attention, local_padding_mask
from ...ops.export_helpers import adaptive_avg_pool2d_matmul
from ...ops.log_cpb import BiasGeometry, PoolBias, bias_geometry, evaluate_cpb
from ...utils.cache import ShapeCache
from ...utils.tracing import is_capturing, is_exporting
from ..layers.attention_maps import spatial_result, subsampled_attention_map
from ..layers.drop import DropPath, drop_path_schedule
from ..layers.linear import Linear
from .base import PyramidBackbone

Size = Tuple[int, int]
BLOCK_EPS = 1e-6  # block and stage-output norms; patch-embed and pooled-path norms use 1e-5
TEMPERATURE_INIT = 1 / 0.24  # softplus(temperature) at initialisation
CPB_HIDDEN = 512
POS_BIAS_MODES = ('interpolate', 'extrapolate')


def inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


@dataclass
class StageContext:
    """Everything a stage's blocks need that depends only on the feature-map size (cached)."""
    size: Size
    pool_size: Size
    length_scale: torch.Tensor  # (N, 1) or scalar: log of the number of keys each query sees
    padding_mask: Optional[torch.Tensor]  # (N, 9) bool, stages with aggregated attention only
    bias_geometry: BiasGeometry


class ConvGLU(nn.Module):
    """Convolutional GLU (Sec. 3.3): ``fc2(GELU(DWConv3x3(x1)) * x2)`` with ``x1, x2 = fc1(x)``."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(2 * int(dim * mlp_ratio) / 3)
        self.fc1 = Linear(dim, 2 * hidden)
        self.dwconv = DepthwiseConv(hidden)
        self.act = nn.GELU()
        self.fc2 = Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        gate, value = self.fc1(x).chunk(2, dim=-1)  # the first half is the gated branch
        return self.fc2(self.act(self.dwconv(gate, size)) * value)


class DepthwiseConv(nn.Module):
    """3x3 depthwise convolution on tokens ``(B, N, C)`` of an ``H x W`` map. The tokens are the map's
    channels-last layout, in which oneDNN's depthwise kernel is 2-3x faster than in NCHW: it runs on that view."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, size: Size) -> torch.Tensor:
        b, n, c = x.shape
        x_nhwc = x.reshape(b, *size, c)
        out_nchw = self.dwconv(x_nhwc.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
        return out_nchw.permute(0, 2, 3, 1).reshape(b, n, c)


class CosineAttentionBase(nn.Module):
    """Parameters shared by both attentions: query embedding, temperature and the bias MLP."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.temperature = nn.Parameter(torch.full((num_heads, 1, 1), inverse_softplus(TEMPERATURE_INIT)))
        self.query_embedding = nn.Parameter(torch.zeros(num_heads, 1, self.head_dim))
        self.cpb_fc1 = nn.Linear(2, CPB_HIDDEN)
        self.cpb_fc2 = nn.Linear(CPB_HIDDEN, num_heads)
        self.proj = Linear(dim, dim)
        self._cpb_cache = ShapeCache(1)  # the MLP output, reused by inference forwards

    def position_bias(self, geometry: BiasGeometry) -> PoolBias:
        """The continuous position bias at this input size. Inference reuses the MLP output while the table
        and the MLP's parameters are unchanged (their version counters are in the key: loading weights or an
        optimizer step invalidates it)."""
        if torch.is_grad_enabled() or is_capturing():  # a graph recomputes it (no version-counter key)
            self._cpb_cache.clear()
            return PoolBias(evaluate_cpb(self.cpb_fc1, self.cpb_fc2, geometry), geometry)
        params = (self.cpb_fc1.weight, self.cpb_fc1.bias, self.cpb_fc2.weight, self.cpb_fc2.bias)
        key = (geometry.table_key, ) + tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        return PoolBias(self._cpb_cache.get(key, lambda: evaluate_cpb(self.cpb_fc1, self.cpb_fc2, geometry)), geometry)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, c // self.head_dim, self.head_dim).transpose(1, 2)  # (B, h, N, d); B may be 0

    def normalized_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, N, h*d)`` -> L2-normalised ``(B, h, N, d)``, contiguous: the batched matmuls and the
        shifted 3x3 views of the attention core run several times faster on it than on a strided view."""
        b, n, c = x.shape
        return F.normalize(x.view(b, n, c // self.head_dim, self.head_dim), dim=-1).transpose(1, 2).contiguous()

    def scale_queries(self, q_norm: torch.Tensor, length_scale: torch.Tensor) -> torch.Tensor:
        """Eq. 7: ``(q_norm + query_embedding) * softplus(temperature) * log(N_keys)`` (no 1/sqrt(d))."""
        return (q_norm + self.query_embedding) * F.softplus(self.temperature) * length_scale

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.query_embedding, std=0.02)
        nn.init.constant_(self.temperature, inverse_softplus(TEMPERATURE_INIT))


class AggregatedAttention(CosineAttentionBase):
    """Pixel-focused aggregated attention of stages 1-3 (Sec. 3.2, Eq. 6-9). The pooled path "activates and
    pools", ``LN(AvgPool(GELU(Conv1x1(x))))`` to ``H//sr x W//sr``, then shares the fine path's ``kv``."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, attn_impl: str = 'auto') -> None:
        super().__init__(dim, num_heads)
        self.sr_ratio = sr_ratio
        self.attn_impl = attn_impl
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.sr = nn.Conv2d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim)
        self.act = nn.GELU()
        self.relative_pos_bias_local = nn.Parameter(torch.zeros(num_heads, 9))
        self.learnable_tokens = nn.Parameter(torch.zeros(num_heads, self.head_dim, 9))
        self.learnable_bias = nn.Parameter(torch.zeros(num_heads, 1, 9))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.trunc_normal_(self.relative_pos_bias_local, std=4e-4)
        nn.init.trunc_normal_(self.learnable_tokens, std=0.02)
        nn.init.zeros_(self.learnable_bias)

    def forward(self, x: torch.Tensor, ctx: StageContext) -> torch.Tensor:
        b, n, c = x.shape
        q_norm = self.normalized_heads(self.q(x))  # (B, h, N, d)
        q_scaled = self.scale_queries(q_norm, ctx.length_scale)
        k_local, v_local = self.kv(x).chunk(2, dim=-1)  # channels [k | v]
        k_local = self.normalized_heads(k_local)
        v_local = self.split_heads(v_local).contiguous()

        # the tokens are the channels-last layout of the map: the pooling runs on that view
        # (the 1x1 conv ``sr`` is applied as the linear map it is: oneDNN has no fast path for the view)
        sr = F.linear(x, self.sr.weight.flatten(1), self.sr.bias).view(b, *ctx.size, c).permute(0, 3, 1, 2)
        if is_exporting():  # export: ONNX has no adaptive pooling to a size that is a graph value
            pooled = adaptive_avg_pool2d_matmul(self.act(sr), ctx.pool_size)
        else:
            pooled = F.adaptive_avg_pool2d(self.act(sr), ctx.pool_size)
        pooled = self.norm(pooled.flatten(2).transpose(1, 2))  # (B, P, C)
        k_pool, v_pool = self.split_heads(self.kv(pooled)).chunk(2, dim=1)

        out = aggregated_attention(
            q_scaled, q_norm, k_local, v_local, F.normalize(k_pool, dim=-1), v_pool,
            size=ctx.size, pool_size=ctx.pool_size, local_bias=self.relative_pos_bias_local,
            padding_mask=ctx.padding_mask, pool_bias=self.position_bias(ctx.bias_geometry),
            learnable_tokens=self.learnable_tokens, learnable_bias=self.learnable_bias, impl=self.attn_impl)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class FullAttention(CosineAttentionBase):
    """Stage-4 attention: full length-scaled cosine attention with query embedding and position bias."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qkv = Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor, ctx: StageContext) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.split_heads(self.qkv(x)).chunk(3, dim=1)  # channels [q | k | v]
        q_scaled = self.scale_queries(F.normalize(q, dim=-1), ctx.length_scale)
        bias = self.position_bias(ctx.bias_geometry).full()  # (h, N, N)
        out = length_scaled_attention(q_scaled, F.normalize(k, dim=-1), v, bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class TransNeXtBlock(nn.Module):
    """Pre-norm block: ``x + DP(Attn(LN x))``, then ``x + DP(ConvGLU(LN x))`` (no layer scale)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float,
                 attn_impl: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        if sr_ratio > 1:
            self.attn = AggregatedAttention(dim, num_heads, sr_ratio, attn_impl)
        else:
            self.attn = FullAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.mlp = ConvGLU(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, ctx: StageContext) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), ctx))
        return x + self.drop_path(self.mlp(self.norm2(x), ctx.size))

    def attention_map(self, inputs: tuple, probs: Optional[torch.Tensor]) -> dict:
        """The centre query's attention (analysis): full attention from the recorded ``probs``; aggregated
        attention (Sec. 3.2) recomputed as one softmax over the 3x3 neighbours and the pooled keys, the
        pooled weights spread over the cells each pooled key averages (the learnable-token term added
        after the softmax is not a probability and is left out)."""
        x, ctx = self.norm1(inputs[0]), inputs[1]
        h, w = ctx.size
        if not isinstance(self.attn, AggregatedAttention):
            return subsampled_attention_map(probs, h, w, 1)
        attn, (b, _, c) = self.attn, x.shape
        cy, cx = h // 2, w // 2
        centre = cy * w + cx
        q_norm = F.normalize(attn.split_heads(attn.q(x)), dim=-1)
        q_scaled = attn.scale_queries(q_norm, ctx.length_scale)[0, :, centre]  # (heads, d)
        k_local = F.normalize(attn.split_heads(attn.kv(x)).chunk(2, dim=1)[0], dim=-1)[0]  # (heads, N, d)
        pooled = F.adaptive_avg_pool2d(attn.act(attn.sr(x.transpose(1, 2).reshape(b, c, h, w))), ctx.pool_size)
        pooled = attn.norm(pooled.flatten(2).transpose(1, 2))
        k_pool = F.normalize(attn.split_heads(attn.kv(pooled)).chunk(2, dim=1)[0], dim=-1)[0]  # (heads, P, d)
        local, cells = [], []
        for i, (dy, dx) in enumerate((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
            y, xx = cy + dy, cx + dx
            if 0 <= y < h and 0 <= xx < w:
                local.append((q_scaled * k_local[:, y * w + xx]).sum(-1) + attn.relative_pos_bias_local[:, i])
                cells.append(y * w + xx)
        pool_bias = attn.position_bias(ctx.bias_geometry).full()[:, centre]  # (heads, P)
        pool_logits = (q_scaled[:, None] @ k_pool.transpose(-2, -1))[:, 0] + pool_bias  # (heads, P)
        weights = torch.cat([torch.stack(local, -1), pool_logits], dim=-1).softmax(-1).mean(0)
        ph, pw = ctx.pool_size
        pool_map = torch.zeros(h, w)
        pooled_weights = weights[len(cells):].view(ph, pw)
        for i in range(ph):  # adaptive average pooling bins: rows floor(i*h/ph) .. ceil((i+1)*h/ph)
            r0, r1 = (i * h) // ph, -(-(i + 1) * h // ph)
            for j in range(pw):
                c0, c1 = (j * w) // pw, -(-(j + 1) * w // pw)
                pool_map[r0:r1, c0:c1] += pooled_weights[i, j] / ((r1 - r0) * (c1 - c0))
        out = pool_map.view(-1)
        out[torch.tensor(cells)] += weights[:len(cells)]
        return spatial_result(out, h, w, f'aggregated attention (3x3 + pooled {ph}x{pw})')


class OverlapPatchEmbed(nn.Module):
    """Overlapping strided convolution + LayerNorm (eps 1e-5): 7x7/s4 for the stem, 3x3/s2 after."""

    def __init__(self, in_channels: int, dim: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size, stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x_nchw: torch.Tensor) -> Tuple[torch.Tensor, Size]:
        x_nchw = self.proj(x_nchw)
        size = tuple(x_nchw.shape[2:])
        return self.norm(x_nchw.flatten(2).transpose(1, 2)), size


@MODELS.register_module()
class TransNeXt(PyramidBackbone):
    """TransNeXt dense backbone (outputs at strides 4/8/16/32 with ``embed_dims`` channels).

    Args (after those of :class:`PyramidBackbone`):
        arch: a key of ``arch_zoo`` or a dict with ``embed_dims``, ``depths``, ``num_heads`` (optional
            ``mlp_ratios``, ``sr_ratios``).
        pos_bias_mode: ``'interpolate'`` (default; the authors' detection and single-scale segmentation
            models) evaluates the position-bias MLP on the grid of a square ``img_size`` input and resizes the
            bias bilinearly; ``'extrapolate'`` (their ``*_ms_extrapolation`` UperNets) uses the actual grid.
        img_size: the side the interpolated bias is made for (authors: 800 for detection and multi-scale
            segmentation, 512 for single-scale segmentation).
        pretrain_size: the ImageNet training resolution that normalises the bias coordinates.
        attn_impl: aggregated attention, same math: ``'auto'`` (default: the Triton kernel on CUDA where
            ``triton`` is usable, else ``'fast'``), ``'fast'`` (PyTorch), ``'reference'`` or ``'triton'``.
    """
    family = 'transnext'
    name_prefix = 'transnext'
    stem_module_names = ('patch_embed1',)
    init_conv_fan_out = True
    arch_required_keys = ('embed_dims', 'depths', 'num_heads')
    arch_zoo = {
        'micro': dict(embed_dims=(48, 96, 192, 384), depths=(2, 2, 15, 2), num_heads=(2, 4, 8, 16)),
        'tiny': dict(embed_dims=(72, 144, 288, 576), depths=(2, 2, 15, 2), num_heads=(3, 6, 12, 24)),
        'small': dict(embed_dims=(72, 144, 288, 576), depths=(5, 5, 22, 5), num_heads=(3, 6, 12, 24)),
        'base': dict(embed_dims=(96, 192, 384, 768), depths=(5, 5, 23, 5), num_heads=(4, 8, 16, 32)),
    }
    arch_defaults = dict(mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1))
    arch_stage_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios')

    def __init__(self,
                 arch='tiny',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None,
                 pos_bias_mode: str = 'interpolate',
                 img_size: int = 800,
                 pretrain_size: int = 224,
                 attn_impl: str = 'auto',
                 pretrained: Optional[str] = None) -> None:
        super().__init__(arch, in_channels, out_indices, drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained=pretrained)
        if pos_bias_mode not in POS_BIAS_MODES:
            raise ValueError(f'TransNeXt: pos_bias_mode must be one of {POS_BIAS_MODES}, got {pos_bias_mode!r}')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'TransNeXt: attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        settings = self.arch_settings
        dims, depths, heads, mlp_ratios, sr_ratios = (settings[key] for key in self.arch_stage_keys)
        if sr_ratios[-1] != 1 or min(sr_ratios[:-1]) < 2:
            raise ValueError(f'TransNeXt: sr_ratios {sr_ratios} must be > 1 in stages 1-3 (aggregated '
                             f'attention) and 1 in stage 4 (full attention)')
        self.embed_dims, self.depths, self.sr_ratios = dims, depths, sr_ratios
        self.out_channels = tuple(dims[i] for i in self.out_indices)
        self.pos_bias_mode = pos_bias_mode
        self.img_size = img_size
        self.pretrain_size = pretrain_size
        self._contexts = ShapeCache(8)

        rates = drop_path_schedule(drop_path_rate, depths)
        for i in range(self.last_stage + 1):  # stages after the last output are not built
            stem = i == 0
            setattr(self, f'patch_embed{i + 1}',
                    OverlapPatchEmbed(in_channels if stem else dims[i - 1], dims[i], 7 if stem else 3,
                                      4 if stem else 2))
            setattr(self, f'block{i + 1}', nn.ModuleList([
                TransNeXtBlock(dims[i], heads[i], mlp_ratios[i], sr_ratios[i], rates[i][j], attn_impl)
                for j in range(depths[i])]))
            setattr(self, f'norm{i + 1}', nn.LayerNorm(dims[i], eps=BLOCK_EPS))

    # -------------------------------------------------------------------------------- structure
    @classmethod
    def classification_settings(cls, arch) -> dict:
        return dict(pos_bias_mode='extrapolate')  # bias evaluated on the actual grid, as in classification

    def stage_module_names(self, index: int) -> List[str]:
        # stage 0's patch embedding is the stem
        return ([f'patch_embed{index + 1}'] if index > 0 else []) + [f'block{index + 1}', f'norm{index + 1}']

    def stage_blocks(self, index: int) -> nn.ModuleList:
        return getattr(self, f'block{index + 1}')

    # ----------------------------------------------------------------------------- initialisation
    def reset_parameters(self) -> None:
        """The authors' initialisation: trunc-normal(.02) linears, fan-out normal convs, unit norms."""
        super().reset_parameters()
        for module in self.modules():
            if isinstance(module, CosineAttentionBase):
                module.reset_parameters()

    # ------------------------------------------------------------------------------------ forward
    def stage_context(self, index: int, size: Size, device: torch.device) -> StageContext:
        """Masks, length scales and bias geometry of stage ``index`` at map size ``size``."""
        sr = self.sr_ratios[index]
        pool_size = (size[0] // sr, size[1] // sr)
        pool_len = pool_size[0] * pool_size[1]
        stride = 2 ** (index + 2)
        table = None if self.pos_bias_mode == 'extrapolate' else self.img_size // stride
        geometry = bias_geometry(size, pool_size, self.pretrain_size // stride, table, sr, device)
        if sr > 1:
            mask = local_padding_mask(size, device)
            valid = (~mask).sum(-1, keepdim=True).float()  # 9 inside, 6 on edges, 4 in corners
            return StageContext(size, pool_size, torch.log(valid + pool_len), mask, geometry)
        # not torch.tensor(pool_len): under export pool_len is a graph value
        return StageContext(size, pool_size, torch.log(torch.ones((), device=device) * pool_len), None, geometry)

    @contextlib.contextmanager
    def counting_paths(self):
        """FLOP counting traces the reference aggregated attention: its 3x3 local attention is a matmul over
        ``F.unfold`` neighbourhoods there (counted), nine shifted element-wise products on the fast path (not)."""
        saved = {m: m.attn_impl for m in self.modules() if isinstance(m, AggregatedAttention)}
        for m in saved:
            m.attn_impl = 'reference'
        try:
            yield
        finally:
            for m, impl in saved.items():
                m.attn_impl = impl

    # torch.compile runs this at trace time and bakes the result in (it depends on the sizes only); the
    # compiled graph is then specialised to the input size (compile with dynamic=False)
    @torch.compiler.assume_constant_result
    def _contexts_for(self, size: Size, device: torch.device) -> List[StageContext]:
        return self._contexts.get(size, lambda: self._make_contexts(size, device), device)

    def _make_contexts(self, size: Size, device: torch.device) -> List[StageContext]:
        """The stage contexts of the stages the forward runs (built from the symbolic sizes under export)."""
        h, w = size
        contexts = []
        for i in range(self.last_stage + 1):
            stride = 4 if i == 0 else 2
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1  # ceil, as the overlapping convs
            contexts.append(self.stage_context(i, (h, w), device))
        return contexts

    def forward_stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[StageContext]]:
        if is_exporting():  # export: built from the symbolic sizes, no size-keyed cache
            return x, self._make_contexts(tuple(x.shape[2:]), x.device)
        size = tuple(int(s) for s in x.shape[2:])  # plain ints (torch 2.1's TorchScript tracer hands out tensors)
        return x, self._contexts_for(size, x.device)

    def forward_stage(self, index: int, state) -> Tuple[tuple, torch.Tensor]:
        x, contexts = state
        x, size = getattr(self, f'patch_embed{index + 1}')(x)
        ctx = contexts[index]
        assert size == ctx.size, f'stage {index} size {size} != expected {ctx.size}'
        x = self.run_blocks(getattr(self, f'block{index + 1}'), x, ctx)
        x = getattr(self, f'norm{index + 1}')(x)
        # (B, C, H, W) in channels-last memory (a view of the tokens) feeds the next patch embedding;
        # the output is returned contiguous (NCHW) by the base class
        x_nchw = x.view(x.shape[0], *size, x.shape[-1]).permute(0, 3, 1, 2)
        return (x_nchw, contexts), x_nchw
