"""CrossFormer (ICLR'22) and CrossFormer++ (TPAMI'23) as dense-prediction backbones.

Wang et al., "CrossFormer: A Versatile Vision Transformer Hinging on Cross-scale Attention" (arXiv:2108.00154)
and "CrossFormer++: ..." (arXiv:2303.06908):

- cross-scale embedding layer (CEL, Sec. 3.1): strided convolutions of several kernel sizes, concatenated
  (larger kernels get fewer channels); it embeds the image and merges every stage;
- long/short-distance attention (LSDA, Sec. 3.2): blocks alternate short-distance attention (SDA, adjacent
  G x G groups) and long-distance attention (LDA, tokens sampled at interval I);
- dynamic position bias (DPB, Sec. 3.3): an MLP from relative coordinates to a per-head bias, so any group
  shape works and no table needs resizing;
- CrossFormer++ only: amplitude cooling layers (ACL: depthwise 3x3 conv then LayerNorm, replacing the tokens,
  no residual) after every third block of a stage but the last.

The authors' dense code has two groupings (``grouping``, :func:`plan_groups`): ``'v1'`` (their ``crossformer``
branch, behind the published CrossFormer numbers) and ``'main'`` (their ``main`` branch, CrossFormer++). Padded
tokens are zeros after ``norm1``, masked as keys (:func:`padded_key_mask`) and cropped. Unlike the authors'
code, no block is mutated during forward (theirs switches a block to SDA for good once it sees a small map),
and the stem and PatchMerging accept any size.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

from ...utils.cache import ShapeCache
from ...utils.fast_paths import chunked_inference, chunks, cpu_fast_path
from ...utils.tracing import is_capturing, is_tracing
from ..layers.attention import softmax_attention
from ..layers.attention_maps import grouped_attention_map
from ..layers.drop import DropPath, drop_path_schedule
from ..layers.linear import Linear
from ..layers.mlp import Mlp
from ..layers.padding import pad_nchw, round_up
from ..layers.relative_position import relative_offsets, relative_position_index
from ..layers.windows import group_partition, group_reverse
from .base import PyramidBackbone

# Additive mask for padded keys. The authors' -1e6 (crossformer_backbone*.py: NEG_INF) is -inf once autocast
# casts the mask to float16 (CUDA AMP: the mask is float32, built from the tokens after layer norm); -1e4 is
# finite in every float dtype, with room for the bias added to it, and exp(-1e4) is 0 as exp(-1e6) is.
NEG_INF = -1e4
# Without autograd, attention and MLP run over chunks of this many tokens: same math, far less peak memory.
INFERENCE_CHUNK_TOKENS = 16384
GROUPINGS = ('v1', 'main')


# ------------------------------------------------------------------------------ cross-scale embedding
def cel_convs(in_channels: int, out_channels: int, kernel_sizes: Sequence[int], stride: int) -> nn.ModuleList:
    """A CEL's convolutions (paper Sec. 3.1): one per kernel size, all with ``stride``, output channels halving
    for each larger kernel with the last two equal (96 over 4 kernels: 48, 24, 12, 12)."""
    n = len(kernel_sizes)
    channels = [out_channels // 2**(i + 1) for i in range(n - 1)] + [out_channels // 2**(n - 1)]
    return nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=k, stride=stride, padding=(k - stride) // 2)
                         for k, c in zip(kernel_sizes, channels))


class CrossScaleEmbedding(nn.Module):
    """The stem CEL: image -> (B, H/4, W/4, C) tokens, then LayerNorm (keys ``projs.*``, ``norm.*``)."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_sizes: Sequence[int], stride: int = 4) -> None:
        super().__init__()
        self.stride = stride
        self.projs = cel_convs(in_channels, embed_dims, kernel_sizes, stride)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        # Bottom/right zero padding to a multiple of the stride gives ceil(H/4) tokens; the authors'
        # convolutions floor, which is the same for the multiples of 32 their code accepts.
        x_nchw, _, _ = pad_nchw(x_nchw, self.stride, self.stride)
        x_nchw = torch.cat([strided_conv(x_nchw, proj) for proj in self.projs], dim=1)
        return self.norm(x_nchw.permute(0, 2, 3, 1))


def strided_conv(x_nchw: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a kernel k = m * s with stride s and padding (k - s) / 2, as a stride-1 conv.

    Folding s x s pixel blocks into channels (space-to-depth) makes it an (m x m) stride-1 conv over
    ``s * s * C_in`` channels: the same sums in another order. oneDNN is pathologically slow on the CEL's
    32x32 stride-4 kernel (seconds at 800x1216), the folded form takes milliseconds. Inputs that do not
    tile (never in the dense stem, which pads them) take ``conv(x)``.
    """
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    h, w = x_nchw.shape[-2:]
    # not a CPU eager forward (GPU, meta, export, compile): the plain conv
    if not cpu_fast_path(x_nchw) or k <= s or k % s or (h + 2 * p) % s or (w + 2 * p) % s:
        return conv(x_nchw)
    b, c = x_nchw.shape[:2]
    x = F.pad(x_nchw, (p, p, p, p))
    hs, ws = x.shape[-2] // s, x.shape[-1] // s
    x = x.view(b, c, hs, s, ws, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, hs, ws)
    m = k // s
    weight = conv.weight.view(-1, c, m, s, m, s).permute(0, 1, 3, 5, 2, 4).reshape(-1, c * s * s, m, m)
    return F.conv2d(x, weight, conv.bias)


class CrossScaleMerging(nn.Module):
    """The CEL between stages: LayerNorm, then the CEL convolutions, concatenated.
    (B, H, W, C) -> (B, ceil(H/2), ceil(W/2), 2C); keys ``norm.*``, ``reductions.*``."""

    def __init__(self, dim: int, kernel_sizes: Sequence[int], stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        self.norm = nn.LayerNorm(dim)
        self.reductions = cel_convs(dim, 2 * dim, kernel_sizes, stride)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x_nchw = self.norm(x_nhwc).permute(0, 3, 1, 2)
        # The authors assert even sizes; zero rows/columns after the norm give ceil(H/2) outputs instead.
        x_nchw, _, _ = pad_nchw(x_nchw, self.stride, self.stride)
        x_nchw = torch.cat([conv(x_nchw) for conv in self.reductions], dim=1)
        return x_nchw.permute(0, 2, 3, 1)


# ------------------------------------------------------------------------------------- grouping
class GroupPlan(NamedTuple):
    """How one block groups an ``h x w`` map: group shape, sampling interval and padded size."""
    group_h: int
    group_w: int
    interval: int
    padded_h: int
    padded_w: int

    @property
    def padded(self) -> Tuple[int, int]:
        return self.padded_h, self.padded_w


def plan_groups(h: int, w: int, group_size: int, interval: int, long_distance: bool, grouping: str) -> GroupPlan:
    """The group shape, sampling interval and padded size the authors' dense code uses for an h x w map.

    v1 (``crossformer`` branch ``models/crossformer_backbone.py``): LDA pads to a multiple of I and makes I*I
    groups of (Hp/I) x (Wp/I) tokens (groups grow with the image); maps with ``min(h, w) <= G`` take SDA with
    G = min(h, w). main (``main`` branch ``models/crossformer_backbone_det.py``): LDA pads to a multiple of G*I,
    each (G*I) x (G*I) region holding I*I groups of G x G tokens; small maps take one max(h, w)-sided group.
    """
    if min(h, w) <= group_size:  # the map is small: plain SDA with one window side
        g = min(h, w) if grouping == 'v1' else max(h, w)
        return GroupPlan(g, g, 1, round_up(h, g), round_up(w, g))
    if not long_distance:
        return GroupPlan(group_size, group_size, 1, round_up(h, group_size), round_up(w, group_size))
    if grouping == 'v1':  # I*I groups that each span the whole (padded) map
        hp, wp = round_up(h, interval), round_up(w, interval)
        return GroupPlan(hp // interval, wp // interval, interval, hp, wp)
    span = group_size * interval
    return GroupPlan(group_size, group_size, interval, round_up(h, span), round_up(w, span))


def padded_key_mask(h: int, w: int, plan: GroupPlan, device: torch.device) -> Optional[torch.Tensor]:
    """``(num_groups, Gh * Gw)`` bool, True on padding keys to mask; None when the map needs no padding.

    A group made only of padding (LDA 'main' grouping: e.g. 57x65 padded to 112x112) masks nothing: with
    every key masked its rows would be all -inf in a kernel that turns the mask into -inf (NaN rows, NaN
    gradients); unmasked they are finite, and their outputs are cropped, so they get zero gradient.
    """
    hp, wp = plan.padded
    if not is_tracing() and (hp, wp) == (h, w):  # exported graphs always mask (nothing, at such sizes)
        return None
    pad = torch.ones(1, hp, wp, 1, dtype=torch.bool, device=device)
    pad[:, :h, :w] = False
    pad = group_partition(pad, plan.group_h, plan.group_w, plan.interval).squeeze(-1)
    return pad & ~pad.all(dim=-1, keepdim=True)


# ------------------------------------------------------------------------------------- attention
class DynamicPosBias(nn.Module):
    """DPB (paper Sec. 3.3): (dh, dw) -> per-head bias through ``Linear, 3 x (LN, ReLU, Linear)``. The
    authors build it as ``DynamicPosBias(dim // 4)`` and divide by 4 again inside: the hidden width is
    ``dim // 16`` (ARCHITECTURES.md Sec. 4.3)."""

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f'DynamicPosBias: hidden width {hidden} must be >= 1 (attention dim >= 16)')
        self.pos_proj = nn.Linear(2, hidden)
        self.pos1, self.pos2, self.pos3 = (nn.Sequential(nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, out))
                                           for out in (hidden, hidden, num_heads))

    def forward(self, offsets: torch.Tensor) -> torch.Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(offsets))))


class GroupAttention(nn.Module):
    """Multi-head self-attention inside each group, with the DPB bias and the padded-key mask.

    Outside training the DPB table of each group shape is reused until a DPB parameter changes (keyed by
    the parameters' version counters). ``cache`` holds the size-only tables; the backbone shares one.
    """

    def __init__(self, dim: int, num_heads: int, cache: Optional[ShapeCache] = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'GroupAttention: dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads)**-0.5
        self.qkv = Linear(dim, dim * 3)
        self.proj = Linear(dim, dim)
        self.pos = DynamicPosBias(dim // 16, num_heads)
        self._shape_cache = cache if cache is not None else ShapeCache(16)
        self._table_cache = ShapeCache(16)

    def position_bias(self, group_h: int, group_w: int, device: torch.device) -> torch.Tensor:
        """``(num_heads, N, N)`` bias for a group of ``N = group_h * group_w`` tokens (paper Eq. 4): the DPB of
        the ``((2Gh-1)(2Gw-1), 2)`` offsets (dh, dw), a table cached per group shape outside training, gathered
        at Swin's ``(N, N)`` index of each (query, key) offset ``q - k`` (v1 LDA groups grow with the image, so
        an index can be ~10 MB: both are in the shape cache)."""
        offsets, index = self._shape_cache.get(
            ('dpb', group_h, group_w),
            lambda: (relative_offsets(group_h, group_w, device), relative_position_index(group_h, group_w, device)),
            device)
        params = list(self.pos.parameters())
        # graphs recompute it: version counters cannot key a cache inside a graph
        if self.training or (torch.is_grad_enabled() and any(p.requires_grad for p in params)) or is_capturing():
            self._table_cache.clear()
            table = self.pos(offsets.to(params[0].dtype))
        else:
            key = (group_h, group_w, params[0].data_ptr()) + tuple(p._version for p in params)
            table = self._table_cache.get(key, lambda: self.pos(offsets.to(params[0].dtype)), device, params[0].dtype)
        return table.t()[:, index]

    def forward(self, groups: torch.Tensor, batch: int, group_h: int, group_w: int,
                key_pad: Optional[torch.Tensor]) -> torch.Tensor:
        """``groups``: ``(batch * num_groups, N, C)``; ``key_pad``: ``(num_groups, N)`` bool or None."""
        bg, n, c = groups.shape
        mask = self.position_bias(group_h, group_w, groups.device).to(groups.dtype).unsqueeze(0)  # 1, nH, N, N
        if key_pad is not None:  # B*nG, nH, N, N (groups are batch-major)
            mask = mask.masked_fill(key_pad[:, None, None, :], NEG_INF)
            mask = mask.repeat(batch, 1, 1, 1) if is_tracing() or batch != 1 else mask  # batch 0: empty
        if not chunked_inference(groups, bg * n, INFERENCE_CHUNK_TOKENS):
            return self.attend(groups, mask)
        # CPU inference: the same per-group math over chunks of groups, so q/k/v never exist for the whole map.
        out = torch.empty_like(groups)
        for start, stop in chunks(bg, max(1, INFERENCE_CHUNK_TOKENS // n)):
            out[start:stop] = self.attend(groups[start:stop], mask if mask.shape[0] == 1 else mask[start:stop])
        return out

    def attend(self, groups: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of ``(G, N, C)`` groups under an additive ``(1 or G, nH, N, N)`` mask."""
        bg, n, c = groups.shape
        qkv = self.qkv(groups).view(bg, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each G, nH, N, hd
        # A 4-d mask keeps PyTorch's fused CPU/GPU kernels eligible (a 5-d layout falls back to the math path).
        out = softmax_attention(q, k, v, mask, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(bg, n, c))


# ------------------------------------------------------------------------------------------ block
class CrossFormerBlock(nn.Module):
    """``x + DP(LSDA(LN(x)))``, then ``x + DP(MLP(LN(x)))``, then (++ only) ``ACL(x)`` (NHWC in/out)."""

    def __init__(self, dim: int, num_heads: int, group_size: int, interval: int, long_distance: bool, grouping: str,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0, with_acl: bool = False,
                 cache: Optional[ShapeCache] = None) -> None:
        super().__init__()
        self._shape_cache = cache if cache is not None else ShapeCache(16)
        self.group_size = group_size
        self.interval = interval
        self.long_distance = long_distance
        self.grouping = grouping
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, num_heads, self._shape_cache)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.with_acl = with_acl
        if with_acl:  # amplitude cooling layer (CrossFormer++ Sec. 4.2); replaces x, no residual
            self.ex_conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
            self.ex_ln = nn.LayerNorm(dim)

    def attention(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x_nhwc.shape
        plan = plan_groups(h, w, self.group_size, self.interval, self.long_distance, self.grouping)
        hp, wp = plan.padded
        if is_tracing() or (hp, wp) != (h, w):  # zeros at the bottom/right, after norm1 (masked as keys below)
            x_nhwc = F.pad(x_nhwc, (0, 0, 0, wp - w, 0, hp - h))
        groups = group_partition(x_nhwc, plan.group_h, plan.group_w, plan.interval)
        key_pad = self._shape_cache.get(('pad', h, w, plan), lambda: padded_key_mask(h, w, plan, x_nhwc.device),
                                        x_nhwc.device)
        groups = self.attn(groups, b, plan.group_h, plan.group_w, key_pad)
        x_nhwc = group_reverse(groups, plan.group_h, plan.group_w, plan.interval, hp, wp)
        return x_nhwc[:, :h, :w]

    def attention_map(self, inputs: tuple, probs: torch.Tensor) -> dict:
        """The centre query's attention (analysis), from the recorded group attention ``probs``."""
        _, h, w, _ = inputs[0].shape
        plan = plan_groups(h, w, self.group_size, self.interval, self.long_distance, self.grouping)
        desc = (f"{'LDA' if plan.interval > 1 else 'SDA'} group attention ({plan.group_h}x{plan.group_w} tokens"
                f"{f', interval {plan.interval}' if plan.interval > 1 else ''})")
        return grouped_attention_map(probs, h, w, plan.group_h, plan.group_w, plan.interval, desc)

    def forward(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x_nhwc = x_nhwc + self.drop_path(self.attention(self.norm1(x_nhwc)))
        if self.training or not chunked_inference(x_nhwc, x_nhwc[..., 0].numel(), INFERENCE_CHUNK_TOKENS):
            x_nhwc = x_nhwc + self.drop_path(self.mlp(self.norm2(x_nhwc)))
        else:  # CPU inference: the same per-token math in place over chunks, without a full-size 4C hidden map
            tokens = x_nhwc.contiguous().view(-1, x_nhwc.shape[-1])
            for start, stop in chunks(tokens.shape[0], INFERENCE_CHUNK_TOKENS):
                chunk = tokens[start:stop]
                chunk += self.mlp(self.norm2(chunk))
            x_nhwc = tokens.view(x_nhwc.shape)
        if self.with_acl:
            x_nhwc = self.ex_ln(self.ex_conv(x_nhwc.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return x_nhwc


class CrossFormerStage(nn.Module):
    """One stage's blocks (SDA at even, LDA at odd indices) and the CEL merging that follows it."""

    def __init__(self, blocks: List[CrossFormerBlock], downsample: Optional[CrossScaleMerging]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample


# --------------------------------------------------------------------------------------- backbone
def _arch(embed_dims: int, depths, num_heads, pp: bool) -> dict:
    return dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads, grouping='main' if pp else 'v1', acl=pp)


@MODELS.register_module()
class CrossFormer(PyramidBackbone):
    """CrossFormer / CrossFormer++ dense backbone: 4 maps at strides 4-32, ``C * 2**i`` channels, no norm.

    Args (after those of :class:`PyramidBackbone`; each defaults to the arch's value):
        group_size: G per stage (7 in every stage, as in the authors' dense configs).
        interval: LDA interval I per stage ((8, 4, 2, 1)).
        grouping: ``'v1'`` (CrossFormer) or ``'main'`` (CrossFormer++); see the module docstring.

    Arch dict keys: ``embed_dims, depths, num_heads`` (required), ``group_size, interval, grouping,
    acl, mlp_ratio, patch_sizes, merge_sizes``.
    """

    family = 'crossformer'
    name_prefix = 'crossformer'
    feature_layout = 'nhwc'
    stem_module_names = ('patch_embed',)
    arch_required_keys = ('embed_dims', 'depths', 'num_heads')
    # Dense defaults are the authors' det/seg config values (G=7, I=8,4,2,1), also for CrossFormer++, whose
    # ImageNet training used G=(4,4,14,7), I=(4,2,1,1); DPB makes either weight-compatible.
    arch_defaults = dict(group_size=(7, 7, 7, 7), interval=(8, 4, 2, 1), grouping='v1', acl=False, mlp_ratio=4.0,
                         patch_sizes=(4, 8, 16, 32), merge_sizes=((2, 4), ) * 3)
    arch_stage_keys = ('depths', 'num_heads', 'group_size', 'interval')
    arch_zoo = {
        'tiny': _arch(64, (1, 1, 8, 6), (2, 4, 8, 16), pp=False),
        'small': _arch(96, (2, 2, 6, 2), (3, 6, 12, 24), pp=False),
        'base': _arch(96, (2, 2, 18, 2), (3, 6, 12, 24), pp=False),
        'large': _arch(128, (2, 2, 18, 2), (4, 8, 16, 32), pp=False),
        'pp-small': _arch(64, (2, 2, 18, 2), (2, 4, 8, 16), pp=True),
        'pp-base': _arch(96, (2, 2, 18, 2), (3, 6, 12, 24), pp=True),
        'pp-large': _arch(128, (2, 2, 18, 2), (4, 8, 16, 32), pp=True),
        'pp-huge': _arch(128, (6, 6, 18, 2), (4, 8, 16, 32), pp=True),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None,
                 group_size: Optional[Sequence[int]] = None,
                 interval: Optional[Sequence[int]] = None,
                 grouping: Optional[str] = None,
                 pretrained: Optional[str] = None) -> None:
        super().__init__(arch, in_channels, out_indices, drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained=pretrained)
        cfg = self.arch_settings
        self.group_size = self.per_stage('group_size', cfg['group_size'] if group_size is None else group_size)
        self.interval = self.per_stage('interval', cfg['interval'] if interval is None else interval)
        self.grouping = cfg['grouping'] if grouping is None else grouping
        if self.grouping not in GROUPINGS:
            raise ValueError(f'CrossFormer: grouping {self.grouping!r} is not one of {GROUPINGS}')
        depths, num_heads, embed_dims = cfg['depths'], cfg['num_heads'], int(cfg['embed_dims'])
        self.channels = [embed_dims * 2**i for i in range(self.num_stages)]
        self.out_channels = tuple(self.channels[i] for i in self.out_indices)

        self.patch_embed = CrossScaleEmbedding(in_channels, embed_dims, cfg['patch_sizes'])
        rates = drop_path_schedule(self.drop_path_rate, depths)
        self._shape_cache = ShapeCache(64)  # masks and DPB index tables, shared by the blocks
        self.layers = nn.ModuleList()
        for i in range(self.last_stage + 1):  # stages after the last output are not built
            depth = depths[i]
            blocks = [
                CrossFormerBlock(
                    self.channels[i], num_heads[i], self.group_size[i], self.interval[i],
                    long_distance=j % 2 == 1, grouping=self.grouping, mlp_ratio=float(cfg['mlp_ratio']),
                    drop_path=rates[i][j],
                    # ACL after blocks 2, 5, 8, ... but never after a stage's last block (++ Sec. 4.2)
                    with_acl=cfg['acl'] and (j + 1) % 3 == 0 and j < depth - 1,
                    cache=self._shape_cache) for j in range(depth)
            ]
            downsample = CrossScaleMerging(self.channels[i], cfg['merge_sizes'][i]) if i < self.last_stage else None
            self.layers.append(CrossFormerStage(blocks, downsample))

    @property
    def export_min_input_size(self) -> int:
        """Smallest side for which one exported graph holds: every stage's map is larger than its group
        (smaller maps switch to another grouping, a different graph)."""
        return max(self.stage_strides[i] * self.group_size[i] for i in range(self.last_stage + 1)) + 1

    @classmethod
    def classification_settings(cls, arch: Union[str, dict]) -> dict:
        settings = cls.resolve_arch(arch)
        if settings['grouping'] == 'main':  # CrossFormer++ trained with G=(4, 4, 14, 7), I=(4, 2, 1, 1)
            return dict(group_size=(4, 4, 14, 7), interval=(4, 2, 1, 1))
        return {}

    def stage_module_names(self, index: int) -> List[str]:
        return ([f'layers.{index - 1}.downsample'] if index > 0 else []) + [f'layers.{index}.blocks']

    def stage_blocks(self, index: int) -> nn.ModuleList:
        return self.layers[index].blocks

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)  # (B, H/4, W/4, C)

    def forward_stage(self, index: int, x_nhwc: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if index > 0:
            x_nhwc = self.layers[index - 1].downsample(x_nhwc)
        x_nhwc = self.run_blocks(self.layers[index].blocks, x_nhwc)
        return x_nhwc, x_nhwc
