"""Window partition/reverse (Swin Transformer, Sec. 3.2) with CrossFormer's sampling interval (LDA, Sec. 3.2):
the one partition of every window and group attention (a window is a group with interval 1)."""
import torch


def group_partition(x_nhwc: torch.Tensor, group_h: int, group_w: int, interval: int = 1) -> torch.Tensor:
    """``(B, Hp, Wp, C)`` -> ``(B * num_groups, group_h * group_w, C)``: groups of tokens sampled at stride
    ``interval``. Regions of ``(group_h * interval) x (group_w * interval)`` tile the map, each holding
    ``interval**2`` groups; group ``(i, j)`` takes the tokens at offsets ``(a * interval + i, b * interval + j)``.
    ``interval == 1`` gives Swin's windows (CrossFormer's SDA), ``interval > 1`` CrossFormer's LDA groups.
    """
    b, hp, wp, c = x_nhwc.shape
    rh, rw = hp // (group_h * interval), wp // (group_w * interval)
    x = x_nhwc.view(b, rh, group_h, interval, rw, group_w, interval, c)
    x = x.permute(0, 1, 4, 3, 6, 2, 5, 7)  # B, Rh, Rw, I, I, Gh, Gw, C
    return x.reshape(-1, group_h * group_w, c)


def group_reverse(groups: torch.Tensor, group_h: int, group_w: int, interval: int, hp: int, wp: int) -> torch.Tensor:
    """Inverse of :func:`group_partition`: ``(B * num_groups, Gh * Gw, C)`` -> ``(B, Hp, Wp, C)``."""
    c = groups.shape[-1]
    rh, rw = hp // (group_h * interval), wp // (group_w * interval)
    b = groups.shape[0] // (rh * rw * interval * interval)  # explicit, so an empty batch reshapes too
    x = groups.view(b, rh, rw, interval, interval, group_h, group_w, c)
    x = x.permute(0, 1, 5, 3, 2, 6, 4, 7)  # B, Rh, Gh, I, Rw, Gw, I, C
    return x.reshape(b, hp, wp, c)
