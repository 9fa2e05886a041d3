"""The two-layer token MLP used by most families (key names ``fc1``/``fc2`` as in the authors' code)."""
from typing import Optional

import torch
from torch import nn


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
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
