"""The random initialisation the ViT-family papers share (used when no checkpoint is given)."""
import math

from mmengine.model import constant_init, normal_init
from torch import nn


def init_vit_weights(root: nn.Module, conv_fan_out: bool = False) -> None:
    """Truncated-normal(std 0.02) linear weights with zero biases and unit-scale LayerNorms; with
    ``conv_fan_out``, convolutions get ``normal(0, sqrt(2 / fan_out))`` weights and zero biases (the PVT /
    Twins / TransNeXt rule, fan_out = k_h * k_w * out_channels / groups). Other modules are left as built."""
    for m in root.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            constant_init(m, 1.0)
        elif conv_fan_out and isinstance(m, nn.Conv2d):
            normal_init(m, 0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups)))
