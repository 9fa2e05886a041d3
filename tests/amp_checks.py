"""CUDA's autocast, emulated on the CPU, so that mask and softmax paths run in the dtypes a GPU gives them.

CPU autocast casts the same matrix products to the low dtype as CUDA autocast does (linear, conv, matmul,
bmm, ``scaled_dot_product_attention``), but it lacks CUDA's float32 list: on a GPU ``layer_norm``,
``softmax``, ``sum``, ``exp``, ``norm``... of fp16 tensors compute and return **float32**, on the CPU they
stay fp16 (measured on torch 2.13). Model code that picks a constant from a tensor's dtype (a mask value
from the grouped tokens after a layer norm, say) therefore sees float32 on a GPU and fp16 on the CPU.

:func:`cuda_like_autocast` is ``torch.autocast('cpu', dtype)`` plus a :class:`TorchFunctionMode` that
casts the inputs of CUDA's float32-list ops to float32, as CUDA autocast does. It also records what
every ``scaled_dot_product_attention`` and softmax call saw (:class:`AttentionLog`): the dtype of the
logits' inputs, and whether an additive mask stays finite once autocast casts it to the query's dtype.
"""
import contextlib
import warnings
from dataclasses import dataclass, field
from typing import List

import torch
from torch.overrides import TorchFunctionMode

# CUDA autocast's float32 list (aten/src/ATen/autocast_mode.cpp, KERNEL_CUDA(..., fp32*)), by the name of the
# Python-level function that reaches it; F.normalize is here because its norm (fp32 list) promotes the division.
CUDA_FP32_OPS = frozenset({
    'layer_norm', 'group_norm', 'softmax', 'log_softmax', 'sum', 'cumsum', 'cumprod', 'prod', 'exp', 'expm1',
    'log', 'log2', 'log10', 'log1p', 'pow', '__pow__', 'rsqrt', 'reciprocal', 'norm', 'vector_norm',
    'normalize', 'cosine_similarity', 'logsumexp', 'softplus', 'acos', 'asin', 'cosh', 'sinh', 'tan', 'erfinv',
    'dist', 'cdist', 'pdist', 'renorm', 'mse_loss', 'l1_loss', 'smooth_l1_loss', 'huber_loss', 'nll_loss',
    'cross_entropy', 'binary_cross_entropy_with_logits', 'kl_div', 'poisson_nll_loss',
})
LOW = (torch.float16, torch.bfloat16)


@dataclass
class AttentionLog:
    sdpa_dtypes: List[torch.dtype] = field(default_factory=list)  # dtype of q in every SDPA call
    softmax_dtypes: List[torch.dtype] = field(default_factory=list)  # dtype of the logits every softmax got
    bad_masks: List[torch.dtype] = field(default_factory=list)  # dtypes an additive mask was not finite in


def _to_float(value):
    if isinstance(value, torch.Tensor) and value.dtype in LOW:
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float(v) for v in value)
    return value


class _CudaAutocastPolicy(TorchFunctionMode):

    def __init__(self, log: AttentionLog):
        super().__init__()
        self.log = log

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name == 'scaled_dot_product_attention':
            return self.attention(*args, **kwargs)
        if name == 'softmax':
            self.log.softmax_dtypes.append(args[0].dtype)
        if name in CUDA_FP32_OPS and cpu_autocast_dtype() is not None:  # not inside autocast(enabled=False)
            args, kwargs = _to_float(args), {k: _to_float(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def attention(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        """SDPA as autocast and a torch 2.1 GPU kernel compute it: inputs cast to the autocast dtype (the
        mask too), products in it, softmax in float32; a row whose keys are all -inf gives NaN there (torch
        >= 2.5's CPU math path returns zeros for such rows, which would hide the fault)."""
        assert not is_causal
        dtype = cpu_autocast_dtype() or q.dtype  # autocast casts every float input to its dtype
        self.log.sdpa_dtypes.append(dtype)
        q, k, v = (t.to(dtype) for t in (q, k, v))
        logits = (q @ k.transpose(-2, -1)).float() * (q.shape[-1]**-0.5 if scale is None else scale)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            logits = logits.masked_fill(~attn_mask, float('-inf'))
        elif attn_mask is not None:
            attn_mask = attn_mask.to(dtype)
            if not torch.isfinite(attn_mask).all():
                self.log.bad_masks.append(dtype)
            logits = logits + attn_mask.float()
        weights = torch.nn.functional.dropout(logits.softmax(-1), dropout_p)
        return weights.to(dtype) @ v


def cpu_autocast_dtype():
    """The dtype CPU autocast casts to here, or None outside autocast (or inside ``autocast(enabled=False)``)."""
    if hasattr(torch, 'get_autocast_dtype'):  # torch >= 2.4; the *_cpu_* functions are deprecated there
        return torch.get_autocast_dtype('cpu') if torch.is_autocast_enabled('cpu') else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def cpu_autocast_supports(dtype: torch.dtype) -> bool:
    """Whether this torch autocasts CPU ops to ``dtype`` (float16: torch >= 2.3; bfloat16: always)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # torch 2.1 warns, then refuses float16
            with torch.autocast('cpu', dtype=dtype):
                probe = torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2))
    except RuntimeError:
        return False
    return probe.dtype == dtype


@contextlib.contextmanager
def cuda_like_autocast(dtype: torch.dtype = torch.float16):
    """``torch.autocast`` on the CPU with CUDA's float32 list; yields an :class:`AttentionLog`."""
    log = AttentionLog()
    with torch.autocast('cpu', dtype=dtype), _CudaAutocastPolicy(log):
        yield log
