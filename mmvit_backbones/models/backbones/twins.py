"""Twins (Chu et al., "Twins: Revisiting the Design of Spatial Attention in Vision Transformers", NeurIPS 2021).

One core, :class:`TwinsBackbone`; the variants differ only in data (``arch_zoo``). **PCPVT** (Sec. 3.1, PVT
with conditional position encodings) uses *global sub-sampled attention* (GSA: keys/values from a ``sr x sr``
strided conv of the map) in every block; **SVT** (Sec. 3.2) alternates *locally-grouped self-attention* (LSA,
plain attention inside 7x7 windows; even blocks) and GSA (odd blocks). Both insert a PEG (CPVT's depthwise 3x3
conv + residual) after block 0 of each stage. As in the authors' ``detection/gvt.py`` and
``segmentation/gvt.py``, SVT normalises every stage output *in the main path*; PCPVT has no output norm.

Differences from the authors' dense code (docs/twins.md): patch embeddings zero-pad the input bottom/right to
a multiple of their stride, so any input ``>= 32`` works (``ceil(H / s_i)`` rows; theirs floor, the same for
multiples of 32); LSA masks the padded keys of every padding by default (``lsa_mask``, see
:class:`LocallyGroupedAttention`); ``drop_path_rate`` is honoured (their registration classes ignore it).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.registry import MODELS
from torch import nn

from ...utils.cache import ShapeCache
from ...utils.tracing import is_tracing
from ..layers.attention import softmax_attention
from ..layers.attention_maps import grouped_attention_map, subsampled_attention_map
from ..layers.drop import DropPath, drop_path_schedule
from ..layers.linear import Linear
from ..layers.mlp import Mlp
from ..layers.padding import pad_nchw, pad_nhwc
from ..layers.windows import group_partition, group_reverse
from .base import PyramidBackbone

HW = Tuple[int, int]

BLOCK_NORM_EPS = 1e-6  # norm1/norm2 and the SVT stage norms (authors: partial(nn.LayerNorm, eps=1e-6))
EMBED_NORM_EPS = 1e-5  # patch-embedding and GSA sub-sampling norms (authors: plain nn.LayerNorm)
LSA_MASK_MODES = ('correct', 'official', 'none')
ATTN_IMPLS = ('sdpa', 'reference')


class PatchEmbed(nn.Module):
    """Strided conv (kernel = stride) + LayerNorm; pads the input bottom/right to a stride multiple."""

    def __init__(self, in_channels: int, embed_dims: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=stride, stride=stride)
        self.norm = nn.LayerNorm(embed_dims, eps=EMBED_NORM_EPS)

    def forward(self, x_nchw: torch.Tensor) -> Tuple[torch.Tensor, HW]:
        x_nchw, _, _ = pad_nchw(x_nchw, self.stride, self.stride)
        x_nchw = self.proj(x_nchw)
        hw = (x_nchw.shape[2], x_nchw.shape[3])
        tokens = self.norm(x_nchw.flatten(2).transpose(1, 2))  # (B, H*W, C)
        return tokens, hw


class PosConv(nn.Module):
    """PEG of CPVT (Chu et al. 2021): ``x + DWConv3x3(x)`` on the token map."""

    def __init__(self, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(embed_dims, embed_dims, 3, padding=1, groups=embed_dims)

    def forward(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        b, n, c = tokens.shape
        # the tokens are the channels-last layout of the map: oneDNN's convolutions run many times faster
        # on that view than on an NCHW copy, and the result reads back as tokens without a copy
        x_nchw = tokens.reshape(b, *hw, c).permute(0, 3, 1, 2)
        return (self.proj(x_nchw) + x_nchw).permute(0, 2, 3, 1).reshape(b, n, c)


class GlobalSubsampledAttention(nn.Module):
    """GSA (Twins Sec. 3.2, PVT's spatial-reduction attention): every token attends to the map
    sub-sampled by a ``sr x sr`` strided conv (floor, as the authors), or to all tokens when ``sr == 1``."""

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int, attn_impl: str = 'sdpa') -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.sr_ratio = sr_ratio
        self.attn_impl = attn_impl
        self.q = Linear(embed_dims, embed_dims)
        self.kv = Linear(embed_dims, embed_dims * 2)
        self.proj = Linear(embed_dims, embed_dims)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims, eps=EMBED_NORM_EPS)

    def forward(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        b, n, c = tokens.shape
        heads = self.num_heads
        q = self.q(tokens).reshape(b, n, heads, c // heads).transpose(1, 2)  # (B, heads, N, d)
        if self.sr_ratio > 1:
            x_nchw = tokens.reshape(b, *hw, c).permute(0, 3, 1, 2)  # channels-last view (see PosConv)
            kv_tokens = self.norm(self.sr(x_nchw).flatten(2).transpose(1, 2))  # (B, N / sr^2, C)
        else:
            kv_tokens = tokens
        k, v = self.kv(kv_tokens).reshape(b, kv_tokens.shape[1], 2, heads, c // heads).permute(2, 0, 3, 1, 4)
        out = softmax_attention(q, k, v, reference=self.attn_impl == 'reference')
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class LocallyGroupedAttention(nn.Module):
    """LSA (Twins Sec. 3.2): plain attention inside non-overlapping ``window x window`` groups of the map,
    zero-padded bottom/right. ``mask_mode`` says which padded keys are hidden: ``'correct'`` all;
    ``'official'`` only when both the bottom and the right are padded (the authors' segmentation code,
    whose ``mask[:, -0:]`` slice selects everything when one pad is 0); ``'none'`` none (their detection code).
    """

    def __init__(self, embed_dims: int, num_heads: int, window_size: int, mask_mode: str = 'correct',
                 attn_impl: str = 'sdpa') -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.window_size = window_size
        self.mask_mode = mask_mode
        self.attn_impl = attn_impl
        self.qkv = Linear(embed_dims, embed_dims * 3)
        self.proj = Linear(embed_dims, embed_dims)
        self._mask_cache = ShapeCache(64)

    def key_mask(self, h: int, w: int, pad_b: int, pad_r: int, device: torch.device,
                 batch: int = 1) -> Optional[torch.Tensor]:
        """Bool ``(batch*nW, 1, 1, ws*ws)``, True for real keys, or None when nothing is masked (cached per
        map size and batch). Traced, it is always built (all True where nothing is masked), so one exported
        graph serves every input size."""
        if self.mask_mode == 'none':
            return None
        if is_tracing():
            return self._key_mask(h, w, pad_b, pad_r, device, batch)
        if not (pad_b > 0 and pad_r > 0 if self.mask_mode == 'official' else pad_b > 0 or pad_r > 0):
            return None
        return self._mask_cache.get((h, w, batch), lambda: self._key_mask(h, w, pad_b, pad_r, device, batch),
                                    device)

    def _key_mask(self, h, w, pad_b, pad_r, device: torch.device, batch: int) -> torch.Tensor:
        ws = self.window_size
        rows = torch.arange(h + pad_b, device=device) < h
        cols = torch.arange(w + pad_r, device=device) < w
        real = rows[:, None] & cols[None, :]
        if self.mask_mode == 'official':  # masked only when both sides are padded
            real = real | ~((~rows).any() & (~cols).any())
        mask = group_partition(real[None, :, :, None], ws, ws).reshape(-1, 1, 1, ws * ws)
        return mask.expand(batch, -1, -1, -1, -1).reshape(-1, *mask.shape[1:])

    def forward(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        b, n, c = tokens.shape
        h, w = hw
        ws, heads = self.window_size, self.num_heads
        x_nhwc, pad_b, pad_r = pad_nhwc(tokens.reshape(b, h, w, c), ws, ws)
        hp, wp = x_nhwc.shape[1:3]
        windows = group_partition(x_nhwc, ws, ws)  # (B*nW, ws*ws, C)
        q, k, v = self.qkv(windows).reshape(windows.shape[0], ws * ws, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        mask = self.key_mask(h, w, pad_b, pad_r, tokens.device, batch=b)  # (B*nW, 1, 1, ws*ws) or None
        out = softmax_attention(q, k, v, mask, reference=self.attn_impl == 'reference')  # (B*nW, heads, N, d)
        x_nhwc = group_reverse(out.transpose(1, 2).reshape(-1, ws * ws, c), ws, ws, 1, hp, wp)
        return self.proj(x_nhwc[:, :h, :w].reshape(b, n, c))


class TwinsBlock(nn.Module):
    """Pre-norm transformer block: ``x + DP(Attn(LN x))``, then ``x + DP(MLP(LN x))``."""

    def __init__(self, embed_dims: int, mlp_ratio: float, drop_path: float, attn: nn.Module) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS)
        self.attn = attn
        self.norm2 = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention_map(self, inputs: tuple, probs: torch.Tensor) -> dict:
        """The centre query's attention (analysis), from the recorded ``probs`` (LSA windows or GSA)."""
        h, w = inputs[1]
        if isinstance(self.attn, LocallyGroupedAttention):
            ws = self.attn.window_size
            return grouped_attention_map(probs, h, w, ws, ws, 1, f'locally-grouped attention ({ws}x{ws} windows)')
        return subsampled_attention_map(probs, h, w, self.attn.sr_ratio)

    def forward(self, tokens: torch.Tensor, hw: HW) -> torch.Tensor:
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens), hw))
        return tokens + self.drop_path(self.mlp(self.norm2(tokens)))


class TwinsStage(nn.Module):
    """Patch embedding, blocks with a PEG after block 0, and (SVT) a LayerNorm in the main path."""

    def __init__(self, in_channels: int, embed_dims: int, stride: int, blocks: List[TwinsBlock],
                 norm_after_stage: bool) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, embed_dims, stride)
        self.blocks = nn.ModuleList(blocks)
        self.pos_block = PosConv(embed_dims)
        self.norm = nn.LayerNorm(embed_dims, eps=BLOCK_NORM_EPS) if norm_after_stage else nn.Identity()


class TwinsBackbone(PyramidBackbone):
    """The shared Twins core; :class:`TwinsPCPVT` and :class:`TwinsSVT` differ only in ``arch_zoo``.

    Arch keys: ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (GSA),
    ``window_sizes`` (LSA window per stage, used by the even blocks; ``None``: GSA only) and ``norm_after_stage``.

    Args (after those of :class:`PyramidBackbone`; ``drop_path_rate`` defaults to the authors' dense 0.2):
        lsa_mask: ``'correct'`` (default), ``'official'`` or ``'none'``; see :class:`LocallyGroupedAttention`.
        attn_impl: ``'sdpa'`` (``F.scaled_dot_product_attention``) or ``'reference'`` (matmul + softmax).
    """

    family = 'twins'
    stem_module_names = ('stages.0.patch_embed',)  # forward_stem: the image (stage 0 embeds it)
    init_conv_fan_out = True
    arch_required_keys = ('embed_dims', 'depths', 'num_heads', 'mlp_ratios', 'sr_ratios')
    arch_defaults = dict(window_sizes=None, norm_after_stage=False)
    arch_stage_keys = arch_required_keys + ('window_sizes', )
    patch_strides = (4, 2, 2, 2)

    def __init__(self,
                 arch: str = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.2,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg=None,
                 lsa_mask: str = 'correct',
                 attn_impl: str = 'sdpa',
                 pretrained: Optional[str] = None) -> None:
        super().__init__(arch, in_channels, out_indices, drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained=pretrained)
        if lsa_mask not in LSA_MASK_MODES:
            raise ValueError(f'{type(self).__name__}: lsa_mask {lsa_mask!r} unknown; expected one of {LSA_MASK_MODES}')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'{type(self).__name__}: attn_impl {attn_impl!r} unknown; expected one of {ATTN_IMPLS}')
        arch = self.arch_settings
        window_sizes = arch['window_sizes']
        self.embed_dims = list(arch['embed_dims'])
        self.out_channels = tuple(self.embed_dims[i] for i in self.out_indices)
        self.lsa_mask = lsa_mask
        rates = drop_path_schedule(self.drop_path_rate, arch['depths'])

        stages = []
        for i in range(self.last_stage + 1):  # stages after the last output are not built
            dims, heads = arch['embed_dims'][i], arch['num_heads'][i]
            blocks = []
            for j in range(arch['depths'][i]):
                if window_sizes is not None and j % 2 == 0:
                    attn = LocallyGroupedAttention(dims, heads, window_sizes[i], lsa_mask, attn_impl)
                else:
                    attn = GlobalSubsampledAttention(dims, heads, arch['sr_ratios'][i], attn_impl)
                blocks.append(TwinsBlock(dims, arch['mlp_ratios'][i], rates[i][j], attn))
            stages.append(TwinsStage(in_channels if i == 0 else arch['embed_dims'][i - 1], dims,
                                     self.patch_strides[i], blocks, arch['norm_after_stage']))
        self.stages = nn.ModuleList(stages)

    @property
    def export_example_min_size(self) -> int:
        """Every LSA stage of the example must span two windows: ``ceil(H / s_i) > window_i`` (225 for 7x7)."""
        side, stride = super().export_example_min_size, 1
        windows = self.arch_settings['window_sizes'] or (0, ) * self.num_stages
        for i in range(self.last_stage + 1):
            stride *= self.patch_strides[i]
            side = max(side, stride * windows[i] + 1) if windows[i] else side
        return side

    def stage_module_names(self, index: int) -> List[str]:
        return [f'stages.{index}']

    def stage_blocks(self, index: int) -> nn.ModuleList:
        return self.stages[index].blocks

    def forward_stage(self, index: int, x_nchw: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        stage = self.stages[index]
        tokens, hw = stage.patch_embed(x_nchw)
        for j, block in enumerate(stage.blocks):
            tokens = self.run_checkpointed(block, tokens, hw)
            if j == 0:
                tokens = stage.pos_block(tokens, hw)
        tokens = stage.norm(tokens)
        x_nchw = tokens.transpose(1, 2).unflatten(2, hw)  # (B, C_i, ceil(H / s_i), ceil(W / s_i)); B may be 0
        return x_nchw, x_nchw


_PCPVT_COMMON = dict(embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
                     sr_ratios=[8, 4, 2, 1])  # window_sizes, norm_after_stage: each class's arch_defaults
_SVT_COMMON = dict(mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1])


@MODELS.register_module()
class TwinsPCPVT(TwinsBackbone):
    """Twins-PCPVT (GSA in every block, no output norm). Archs ``small``/``base``/``large``."""

    name_prefix = 'twins-pcpvt'

    arch_zoo = {
        'small': dict(_PCPVT_COMMON, depths=[3, 4, 6, 3]),
        'base': dict(_PCPVT_COMMON, depths=[3, 4, 18, 3]),
        'large': dict(_PCPVT_COMMON, depths=[3, 8, 27, 3]),
    }


@MODELS.register_module()
class TwinsSVT(TwinsBackbone):
    """Twins-SVT (alternating LSA/GSA, a LayerNorm after every stage). Archs ``small``/``base``/``large``."""

    name_prefix = 'twins-svt'

    arch_defaults = dict(window_sizes=[7, 7, 7, 7], norm_after_stage=True)

    arch_zoo = {
        'small': dict(_SVT_COMMON, embed_dims=[64, 128, 256, 512], depths=[2, 2, 10, 4], num_heads=[2, 4, 8, 16]),
        'base': dict(_SVT_COMMON, embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24]),
        'large': dict(_SVT_COMMON, embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    }
