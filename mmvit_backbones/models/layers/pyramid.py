"""Single-scale (columnar) feature maps -> a four-level pyramid at strides 4/8/16/32.

As in BEiT/XCiT's dense code (and ViTDet's ``SimpleFeaturePyramid`` in spirit), each level is made from one
tapped map, keeping its channels; with ``in_stride=16``: stride 4 ConvT 2x2 -> norm -> GELU -> ConvT 2x2,
stride 8 ConvT 2x2, stride 16 identity, stride 32 max-pool 2x2.

Levels are ``ceil(H / s) x ceil(W / s)`` of the *input image*: upsampled maps are cropped bottom/right (a
transposed conv with kernel = stride is local, so the kept part is unchanged) and pooling uses ``ceil_mode``.
Where the image size is a multiple of 32 this is exactly the authors' adapter.
"""
from collections import OrderedDict
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import nn

from ...utils.fast_paths import cpu_fast_path
from ...utils.tracing import is_tracing


class ConvTranspose2x2(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d(kernel_size=2, stride=2)`` computed as one matrix product per row block.

    With kernel = stride each pixel writes its own 2x2 patch, ``out[:, o, 2i + a, 2j + b] = sum_c W[c, o, a, b]
    * x[:, c, i, j] + bias[o]``: a ``(4 * C_out, C_in)`` matrix per pixel. On CPU that runs at GEMM speed, and
    writing row blocks straight into the output keeps the intermediate small (the stride-4 level is the
    largest tensor of the backbone). Elsewhere (and on the reference paths) it is the plain op.
    """

    block_elements = 1 << 20  # intermediate size per row block (elements)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GPU, meta, graph capture: one op; an empty batch would run no loop, so nothing would reach autograd
        if not cpu_fast_path(x) or x.shape[0] == 0:
            return F.conv_transpose2d(x, self.weight, self.bias, stride=2)
        b, c_in, h, w = x.shape
        c_out = self.out_channels
        # (C_in, C_out, 2, 2) -> rows ordered (o, a, b): (4 * C_out, C_in)
        weight = self.weight.reshape(c_in, c_out * 4).t().to(x.dtype)  # (4 * C_out, C_in)
        bias = self.bias.to(x.dtype).repeat_interleave(4)[:, None] if self.bias is not None else None
        out = x.new_empty(b, c_out, 2 * h, 2 * w)
        rows = max(1, self.block_elements // max(1, 4 * c_out * w))
        for i in range(b):
            for top in range(0, h, rows):
                x_rows = x[i, :, top:top + rows].reshape(c_in, -1)  # (C_in, r * W)
                r = x_rows.shape[-1] // w
                # one GEMM (bias fused) into a contiguous (4 * C_out, r * W) block
                y = torch.mm(weight, x_rows) if bias is None else torch.addmm(bias, weight, x_rows)
                # (o, a, b, r, W) -> (o, r, a, W, b): one strided copy straight into the output rows
                out[i, :, 2 * top:2 * (top + r)].view(c_out, r, 2, w, 2).copy_(
                    y.view(c_out, 2, 2, r, w).permute(0, 3, 1, 4, 2))
        return out


def _upsampler(channels: int, factor: int, norm_cfg: dict) -> nn.Sequential:
    """``factor`` in {2, 4}: ConvT(2, 2) [-> bn -> GELU -> ConvT(2, 2)]."""
    layers = OrderedDict(up1=ConvTranspose2x2(channels, channels))
    if factor == 4:
        layers['bn'] = build_norm_layer(norm_cfg, channels)[1]
        layers['act'] = nn.GELU()
        layers['up2'] = ConvTranspose2x2(channels, channels)
    return nn.Sequential(layers)


class SimplePyramid(nn.Module):
    """Turn a map at stride ``in_stride`` into the level of ``out_strides`` it feeds (one input map per level).

    Args:
        channels: channels of the tapped maps (kept at every level).
        in_stride: stride of the tapped maps w.r.t. the image (8 or 16).
        out_strides: the stride of each level; each must be ``in_stride`` times 1/4, 1/2, 1, 2 or 4.
        out_indices: the levels to build (all by default); ``levels[str(i)]`` is level ``i`` whichever are built.
        norm_cfg: norm between the two transposed convs of a 4x upsampler (the authors use SyncBN).
    """

    def __init__(self,
                 channels: int,
                 in_stride: int,
                 out_strides: Sequence[int] = (4, 8, 16, 32),
                 out_indices: Optional[Sequence[int]] = None,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.in_stride = in_stride
        self.out_strides = tuple(out_strides)
        self.out_indices = tuple(range(len(out_strides)) if out_indices is None else out_indices)
        levels = {}
        for index in self.out_indices:
            stride = self.out_strides[index]
            if in_stride % stride == 0 and in_stride // stride in (2, 4):
                levels[str(index)] = _upsampler(channels, in_stride // stride, norm_cfg)
            elif stride == in_stride:
                levels[str(index)] = nn.Identity()
            elif stride % in_stride == 0 and stride // in_stride in (2, 4):
                factor = stride // in_stride
                levels[str(index)] = nn.MaxPool2d(kernel_size=factor, stride=factor, ceil_mode=True)
            else:
                raise ValueError(f'SimplePyramid: output stride {stride} cannot be made from input stride '
                                 f'{in_stride}; expected in_stride times 1/4, 1/2, 1, 2 or 4')
        self.levels = nn.ModuleDict(levels)

    def forward(self, index: int, feat: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """Level ``index`` from its map ``feat`` (B, C, h, w) at ``in_stride``: ``ceil(image_size / s)``."""
        out = self.levels[str(index)](feat)
        stride = self.out_strides[index]
        # ceil as (a + s - 1) // s: exporters map floor division of negative sizes to truncation
        h, w = (image_size[0] + stride - 1) // stride, (image_size[1] + stride - 1) // stride
        if is_tracing() or out.shape[-2] != h or out.shape[-1] != w:
            out = out[..., :h, :w]
        return out
