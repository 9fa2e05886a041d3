"""XCiT: Cross-Covariance Image Transformers (El-Nouby et al., NeurIPS 2021) as a pyramid backbone.

XCiT is columnar: a convolutional patch embedding (stride 8 or 16), then XCA blocks on one token grid.
Each block (paper Sec. 3, Fig. 1) is

    x = x + gamma1 * XCA(norm1(x))     cross-covariance attention over channels
    x = x + gamma3 * LPI(norm3(x))     local patch interaction: two depthwise 3x3 convs
    x = x + gamma2 * MLP(norm2(x))

(the 1-3-2 order of the authors' and timm's parameter names). As in the authors' dense backbone there is
no class token nor class attention; the outputs of four blocks (``tap_blocks``) are reshaped to maps and
turned into strides 4/8/16/32 by :class:`~mmvit_backbones.models.layers.pyramid.SimplePyramid`.
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.registry import MODELS
from torch import nn

from ... import compat
from ...utils.cache import ShapeCache
from ...utils.fast_paths import chunked_inference, chunks, use_reference
from ...utils.tracing import is_capturing
from ..layers.attention_maps import channel_attention_map
from ..layers.drop import DropPath
from ..layers.linear import Linear
from ..layers.mlp import Mlp
from ..layers.pyramid import SimplePyramid
from .base import PyramidBackbone

def _arch(embed_dims: int, depth: int, num_heads: int, patch_size: int) -> dict:
    # Layer-scale init (``eta``) is 1.0 for the 12-layer models and 1e-5 for the 24-layer ones; the
    # tapped blocks are those of the authors' dense configs.
    return dict(embed_dims=embed_dims, depth=depth, num_heads=num_heads, patch_size=patch_size,
                layer_scale_init=1.0 if depth == 12 else 1e-5,
                tap_blocks=(3, 5, 7, 11) if depth == 12 else (7, 11, 15, 23))


_SIZES = {  # name: (embed_dims, depth, num_heads); cls `xcit.py` model functions
    'nano-12': (128, 12, 4),
    'tiny-12': (192, 12, 4),
    'tiny-24': (192, 24, 4),
    'small-12': (384, 12, 8),
    'small-24': (384, 24, 8),
    'medium-24': (512, 24, 8),
    'large-24': (768, 24, 16),
}


class ConvPatchEmbed(nn.Module):
    """Image -> tokens at stride ``patch_size`` (8 or 16) by stride-2 3x3 conv + norm layers, GELU between;
    channels ``C/8 -> C/4 -> C/2 -> C`` (p16) or ``C/4 -> C/2 -> C`` (p8). Outputs are ``ceil(H / patch_size)``."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int, norm_cfg: dict) -> None:
        super().__init__()
        num_convs = int(math.log2(patch_size))
        widths = [embed_dims // 2**(num_convs - 1 - i) for i in range(num_convs)]
        # efficient_conv_bn_eval folds the BN into the conv whenever the BN is in eval mode.
        self.convs = nn.Sequential(*(
            ConvModule(c_in, c_out, 3, stride=2, padding=1, norm_cfg=norm_cfg,
                       act_cfg=None if i == num_convs - 1 else dict(type='GELU'), efficient_conv_bn_eval=True)
            for i, (c_in, c_out) in enumerate(zip([in_channels] + widths[:-1], widths))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last convolutions are faster (oneDNN, tensor cores) and leave the output already in
        # token order: the (B, N, C) view of it needs no copy.
        x = x.contiguous(memory_format=torch.channels_last)
        if is_capturing():  # mmcv's conv-bn folding sets and deletes `conv.forward`, which graphs cannot replay
            for layer in self.convs:
                x = layer.norm(layer.conv(x))
                x = layer.activate(x) if layer.with_activation else x
            return x
        return self.convs(x)  # (B, C, ceil(H/p), ceil(W/p))


class FourierPositionEncoding(nn.Module):
    """Sine/cosine features of the normalised (y, x) position, projected to ``dim`` (paper Sec. 3).

    DETR's encoding: positions ``1..H`` scaled to ``(0, 2*pi]`` (independent of the grid size), ``hidden_dim``
    frequencies per axis, a 1x1 conv to ``dim``. The fixed features are cached per grid size.
    """

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.proj = nn.Conv2d(2 * hidden_dim, dim, kernel_size=1)
        self._cache = ShapeCache(32)

    def fourier_features(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        """``(h * w, 2 * hidden_dim)`` features, y frequencies first, (sin, cos) interleaved."""

        def make() -> torch.Tensor:
            dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
            dim_t = self.temperature**(2 * (dim_t // 2) / self.hidden_dim)

            def encode(size: int) -> torch.Tensor:  # positions 1..size -> (size, hidden_dim)
                pos = torch.arange(1, size + 1, dtype=torch.float32, device=device)
                angles = (pos / (pos[-1:] + 1e-6) * (2 * math.pi))[:, None] / dim_t
                return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

            pos_y = encode(h)[:, None, :].expand(h, w, self.hidden_dim)
            pos_x = encode(w)[None, :, :].expand(h, w, self.hidden_dim)
            return torch.cat((pos_y, pos_x), dim=2).reshape(h * w, 2 * self.hidden_dim)

        return self._cache.get((h, w), make, device)

    def forward(self, h: int, w: int) -> torch.Tensor:
        """Position codes ``(1, h * w, dim)`` for an ``h x w`` token grid (row-major)."""
        feats = self.fourier_features(h, w, self.proj.weight.device).to(self.proj.weight.dtype)
        return F.linear(feats, self.proj.weight.flatten(1), self.proj.bias)[None]


def cross_covariance_attention(q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor,
                               eps: float = 1e-12) -> torch.Tensor:
    """Softmax over the channel-by-channel cross-covariance (paper Sec. 3), computed in float32.

    ``q``, ``k``: ``(B, heads, N, d)`` (any strides); ``temperature``: ``(heads, 1, 1)``. Returns ``(B, heads,
    d, d)`` = ``softmax(normalize(q)^T @ normalize(k) * temperature)``, each channel L2-normalised over the
    tokens. Dividing the Gram matrix by the outer product of the channel norms equals normalising first but
    reads q and k once, in the token-major layout of the qkv projection. Sums over all N tokens overflow in
    float16, so autocast is off here; the caller casts the (small) result back.
    """
    with compat.autocast_disabled(q.device.type):
        q, k = q.float(), k.float()
        gram = q.transpose(-2, -1) @ k  # (B, heads, d, d)
        # square().sum() reduces the strided token axis several times faster than linalg.vector_norm on CPU
        q_norm = q.square().sum(dim=-2).sqrt().clamp_min(eps)  # (B, heads, d)
        k_norm = k.square().sum(dim=-2).sqrt().clamp_min(eps)
        logits = gram / (q_norm[..., :, None] * k_norm[..., None, :]) * temperature.float()
        return logits.softmax(dim=-1)


def cross_covariance_attention_reference(q: torch.Tensor, k: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Plain form of :func:`cross_covariance_attention` (normalise, multiply, softmax), for tests."""
    q = F.normalize(q.float().transpose(-2, -1), dim=-1)  # (B, heads, d, N)
    k = F.normalize(k.float().transpose(-2, -1), dim=-1)
    return (q @ k.transpose(-2, -1) * temperature.float()).softmax(dim=-1)


class XCA(nn.Module):
    """Cross-covariance attention: a ``d x d`` attention map per head mixes the channels (paper Sec. 3), at a
    cost linear in the number of tokens. ``temperature`` (one per head) replaces the ``1/sqrt(d)`` scale."""

    def __init__(self, dim: int, num_heads: int) -> None:  # XCiT checks that num_heads divides dim
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = Linear(dim, dim * 3)
        self.proj = Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # views of the projection, no copies: each (B, heads, N, d)
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        xca = cross_covariance_attention_reference if use_reference() else cross_covariance_attention
        attn = xca(q, k, self.temperature)  # (B, heads, d, d)
        out = v @ attn.to(v.dtype).transpose(-2, -1)  # (B, heads, N, d): out^T = attn @ v^T
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class LPI(nn.Module):
    """Local patch interaction: depthwise 3x3 conv -> GELU -> norm -> depthwise 3x3 conv (paper Sec. 3)."""

    def __init__(self, dim: int, norm_cfg: dict) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.act = nn.GELU()
        self.bn = build_norm_layer(norm_cfg, dim)[1]
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        # Tokens (B, N, C) are an NHWC map in memory: view them as a channels-last NCHW tensor
        # instead of copying (the convolutions and the norm accept either layout).
        x_nchw = x.view(b, hw[0], hw[1], c).permute(0, 3, 1, 2)
        x_nchw = self.conv2(self.bn(self.act(self.conv1(x_nchw))))
        return x_nchw.permute(0, 2, 3, 1).reshape(b, n, c)


class XCABlock(nn.Module):
    """XCA, LPI and MLP sub-layers, each pre-norm with layer scale and stochastic depth."""

    mlp_chunk_tokens = 1024  # token block size of the MLP without autograd (see ``forward``)

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 layer_scale_init: float = 1.0, norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = XCA(dim, num_heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.local_mp = LPI(dim, norm_cfg)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
        self.gamma3 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
        self.gamma2 = nn.Parameter(torch.full((dim, ), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def attention_map(self, inputs: tuple, probs=None) -> dict:
        """The channel attention of the first image (analysis): ``d x d`` per head, block-diagonal."""
        x = self.norm1(inputs[0])
        b, n, c = x.shape
        heads = self.attn.num_heads
        q, k, _ = self.attn.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = cross_covariance_attention(q, k, self.attn.temperature)[0]  # (heads, d, d)
        return channel_attention_map(attn, f'cross-covariance (channel) attention, {heads} heads of '
                                           f'{c // heads}x{c // heads}')

    def residual(self, x: torch.Tensor, gamma: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """``x + drop_path(gamma * update)``; one fused pass when no path is dropped."""
        if self.training and not isinstance(self.drop_path, nn.Identity):
            return x + self.drop_path(gamma * update)
        return torch.addcmul(x, update, gamma)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.residual(x, self.gamma1, self.attn(self.norm1(x)))
        x = self.residual(x, self.gamma3, self.local_mp(self.norm3(x), hw))
        if self.training or not chunked_inference(x, x.shape[1], self.mlp_chunk_tokens):
            return self.residual(x, self.gamma2, self.mlp(self.norm2(x)))
        # CPU inference: the MLP is token-wise, so running it on token blocks gives the same result while
        # its 4x-wide hidden activations (the largest tensors of a block) exist for one block at a time.
        out = torch.empty_like(x)
        for start, stop in chunks(x.shape[1], self.mlp_chunk_tokens):
            part = x[:, start:stop]
            out[:, start:stop] = self.residual(part, self.gamma2, self.mlp(self.norm2(part)))
        return out


@MODELS.register_module()
class XCiT(PyramidBackbone):
    """XCiT backbone with the authors' dense-prediction pyramid (strides 4/8/16/32).

    Stage ``i`` is the blocks after tap ``i-1`` up to tap ``i`` plus pyramid level ``i``; the patch embedding
    and position encoding are the stem. Every level has ``embed_dims`` channels.

    Args (after those of :class:`PyramidBackbone`):
        arch: a key of ``arch_zoo`` (``'{nano,tiny,small,medium,large}-{12,24}-p{8,16}'``) or a dict with
            ``embed_dims``, ``depth``, ``num_heads``, ``patch_size`` (8 or 16) and ``tap_blocks`` (the four
            0-based blocks that feed the pyramid levels), optionally ``mlp_ratio`` (4), ``layer_scale_init`` (1.0).
        drop_path_rate: stochastic depth, the **same rate in every block** (as the authors do).
        norm_cfg: the batch norm of the patch embedding, of every LPI and of the 4x upsampler
            (the authors use SyncBN; ``BN`` suits single-process runs).
    """

    arch_zoo = {f'{name}-p{p}': _arch(*size, p) for name, size in _SIZES.items() for p in (16, 8)}
    arch_required_keys = ('embed_dims', 'depth', 'num_heads', 'patch_size', 'tap_blocks')
    family = 'xcit'
    stem_module_names = ('patch_embed', 'pos_embed')
    name_prefix = 'xcit'
    dense_only_modules = ('pyramid', )

    def __init__(self,
                 arch: Union[str, dict] = 'small-12-p16',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: float = 0.0,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Union[dict, List[dict], None] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 pretrained: Optional[str] = None) -> None:
        super().__init__(arch, in_channels, out_indices, drop_path_rate, frozen_stages, norm_eval, with_cp,
                         init_cfg, pretrained=pretrained)
        settings = self.arch_settings
        self.embed_dims = int(settings['embed_dims'])
        self.depth = int(settings['depth'])
        self.num_heads = int(settings['num_heads'])
        self.patch_size = int(settings['patch_size'])
        self.mlp_ratio = float(settings.get('mlp_ratio', 4.0))
        self.layer_scale_init = float(settings.get('layer_scale_init', 1.0))
        self.tap_blocks = tuple(int(i) for i in settings['tap_blocks'])
        name = type(self).__name__
        if self.patch_size not in (8, 16):
            raise ValueError(f'{name}: patch_size {self.patch_size} is not supported; expected 8 or 16')
        stem_div = self.patch_size // 2
        if self.embed_dims % stem_div or self.embed_dims % self.num_heads:
            raise ValueError(f'{name}: embed_dims {self.embed_dims} must be divisible by {stem_div} (patch '
                             f'embedding widths) and by num_heads {self.num_heads}')
        taps = self.tap_blocks
        if len(taps) != self.num_stages or list(taps) != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= self.depth:
            raise ValueError(f'{name}: tap_blocks {taps} must be {self.num_stages} increasing block indices in '
                             f'[0, {self.depth - 1}]')

        self.patch_embed = ConvPatchEmbed(in_channels, self.embed_dims, self.patch_size, norm_cfg)
        self.pos_embed = FourierPositionEncoding(self.embed_dims)
        self.blocks = nn.ModuleList([  # up to the last tap an output needs
            XCABlock(self.embed_dims, self.num_heads, self.mlp_ratio, self.drop_path_rate, self.layer_scale_init,
                     norm_cfg) for _ in range(self.tap_blocks[self.last_stage] + 1)
        ])
        self.pyramid = SimplePyramid(self.embed_dims, self.patch_size, self.stage_strides, self.out_indices, norm_cfg)
        self.out_channels = tuple(self.embed_dims for _ in self.out_indices)

    # --------------------------------------------------------------------------------- stages
    def _stage_blocks(self, index: int) -> range:
        start = self.tap_blocks[index - 1] + 1 if index > 0 else 0
        return range(start, self.tap_blocks[index] + 1)

    def classification_only_macs(self, img_size: int, num_classes: int = 1000) -> int:
        """The classifier plus two class-attention blocks on the ``tokens + 1`` tokens: the ``qkv``
        projection of all tokens, the class token's attention (``2 C (tokens + 1)``), its output
        projection and MLP."""
        c, n = self.embed_dims, (img_size // self.patch_size)**2 + 1
        per_block = n * c * 3 * c + 2 * c * n + c * c + 2 * int(self.mlp_ratio * c) * c
        return c * num_classes + 2 * per_block

    def stage_module_names(self, index: int) -> List[str]:
        return [f'blocks.{i}' for i in self._stage_blocks(index)] + [f'pyramid.levels.{index}']

    def stage_blocks(self, index: int) -> List[nn.Module]:
        return [self.blocks[i] for i in self._stage_blocks(index)]

    # -------------------------------------------------------------------------------- forward
    def forward_stem(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int], Tuple[int, int]]:
        image_size = tuple(x.shape[-2:])
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        tokens = x.flatten(2).transpose(1, 2) + self.pos_embed(h, w).to(x.dtype)  # (B, N, C)
        return tokens, (h, w), image_size

    def forward_stage(self, index: int, state) -> Tuple[tuple, Optional[torch.Tensor]]:
        tokens, hw, image_size = state
        tokens = self.run_blocks(self.stage_blocks(index), tokens, hw)
        feature = None
        if index in self.out_indices:  # the tapped map through its pyramid level
            b, _, c = tokens.shape
            feature = self.pyramid(index, tokens.transpose(1, 2).reshape(b, c, *hw), image_size)
        return (tokens, hw, image_size), feature

    # ------------------------------------------------------------------------- initialisation
    def reset_parameters(self) -> None:
        """The authors' init: truncated-normal(0.02) linears, unit LayerNorms, PyTorch defaults elsewhere."""
        super().reset_parameters()
        for m in self.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.modules.conv._ConvNd)):
                m.reset_parameters()
            elif isinstance(m, XCA):
                nn.init.ones_(m.temperature)
            elif isinstance(m, XCABlock):
                for gamma in (m.gamma1, m.gamma2, m.gamma3):
                    nn.init.constant_(gamma, self.layer_scale_init)
