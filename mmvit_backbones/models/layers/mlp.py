"""The two-layer token MLP used by most families (key names ``fc1``/``fc2`` as in the authors' code)."""
from typing import Optional

import torch
from torch import nn

from .linear import Linear, is_exact_gelu, linear


class Mlp(nn.Module):
    """``fc1 -> act -> drop -> fc2 -> drop`` on the last dimension (ViT paper, Eq. 3)."""

    def __init__(self,
                 in_features: int,
                 hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None,
                 act_layer: type = nn.GELU,
                 drop: float = 0.0) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_exact_gelu(self.act):  # fc1 -> GELU fused in CPU inference (layers/linear.py)
            hidden = linear(x, self.fc1, gelu=True)
        else:
            hidden = self.act(self.fc1(x))
        return self.drop(self.fc2(self.drop(hidden)))
