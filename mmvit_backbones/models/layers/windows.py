"""Non-overlapping window partition/reverse (Swin Transformer, Sec. 3.2), shared by window attentions."""
import torch


def window_partition(x_nhwc: torch.Tensor, window_h: int, window_w: int) -> torch.Tensor:
    """``(B, H, W, C)`` with H, W multiples of the window -> windows ``(B*nW, window_h*window_w, C)``."""
    b, h, w, c = x_nhwc.shape
    x = x_nhwc.view(b, h // window_h, window_h, w // window_w, window_w, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_h * window_w, c)


def window_reverse(windows: torch.Tensor, window_h: int, window_w: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B*nW, window_h*window_w, C)`` -> ``(B, H, W, C)``."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window_h) * (w // window_w))  # explicit, so an empty batch reshapes too
    x = windows.view(b, h // window_h, w // window_w, window_h, window_w, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
