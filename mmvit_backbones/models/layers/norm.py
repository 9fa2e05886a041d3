"""Channel-first LayerNorm for NCHW maps."""
import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of an NCHW tensor (same parameters as ``nn.LayerNorm(C)``)."""

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        x_nhwc = x_nchw.permute(0, 2, 3, 1)
        x_nhwc = F.layer_norm(x_nhwc, self.normalized_shape, self.weight, self.bias, self.eps)
        return x_nhwc.permute(0, 3, 1, 2)
