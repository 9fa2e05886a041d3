"""The two-layer token MLP used by most families (key names ``fc1``/``fc2`` as in the authors' code)."""
import torch
from torch import nn

from .linear import Linear, linear


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` on the last dimension (ViT paper, Eq. 3; exact erf GELU, fused with ``fc1`` in
    CPU inference: layers/linear.py). The families' dense models use no dropout in it."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = Linear(in_features, hidden_features)
        self.fc2 = Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(linear(x, self.fc1, gelu=True))
