"""Linear layers that take oneDNN's fused path in CPU inference.

``F.linear`` on CPU copies the broadcast bias into the output before the GEMM, and an activation is one more
pass. oneDNN's ``_linear_pointwise`` (what inductor emits for CPU linears) adds the bias and applies GELU
inside the GEMM: 10-35% faster on these token MLPs, ~40% for ``fc1 -> GELU``; same function (float32, exact
erf GELU; ~1e-6 relative summation-order differences). It runs only for float32 CPU tensors without autograd,
outside graph capture (tracing, export, ``torch.compile`` and FLOP counting see ``F.linear``/``nn.GELU``),
where PyTorch has oneDNN; parameters, initialisation and ``isinstance(m, nn.Linear)`` are ``nn.Linear``'s.
"""
import torch
import torch.nn.functional as F
from torch import nn

from ... import compat
from ...utils.fast_paths import cpu_fast_path

try:
    _ONEDNN_LINEAR = torch.ops.mkldnn._linear_pointwise
except (AttributeError, RuntimeError):  # a build without oneDNN, or a torch without the op
    _ONEDNN_LINEAR = None
_ONEDNN_AVAILABLE = _ONEDNN_LINEAR is not None and torch.backends.mkldnn.is_available()


def onednn_inference(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``x @ weight.T`` may take oneDNN's fused path (see the module docstring)."""
    return (_ONEDNN_AVAILABLE and not torch.is_grad_enabled() and cpu_fast_path(x)
            and x.dtype == torch.float32 and weight.dtype == torch.float32 and x.numel() > 0
            and torch.backends.mkldnn.enabled
            and not compat.autocast_enabled('cpu'))  # under autocast a Linear computes in its lower dtype


def linear(x: torch.Tensor, layer: nn.Linear, gelu: bool = False) -> torch.Tensor:
    """``layer(x)``, or ``GELU(layer(x))`` with ``gelu=True`` (exact erf GELU), fused where possible."""
    if gelu and onednn_inference(x, layer.weight):
        return _ONEDNN_LINEAR(x, layer.weight, layer.bias, 'gelu', [], 'none')
    out = layer(x)  # a module call (hooks, FLOP counting by module); a Linear takes the fused bias path
    return F.gelu(out) if gelu else out


class Linear(nn.Linear):
    """``nn.Linear`` whose CPU inference forward takes oneDNN's fused bias path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if onednn_inference(x, self.weight):
            return _ONEDNN_LINEAR(x, self.weight, self.bias, 'none', [], '')
        return F.linear(x, self.weight, self.bias)
