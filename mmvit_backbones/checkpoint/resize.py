"""Resizing position tables when a checkpoint's window/grid differs from the model's."""
import torch
import torch.nn.functional as F


def resize_rel_pos_table(table: torch.Tensor, dst_window: tuple, mode: str = 'bicubic') -> torch.Tensor:
    """Resize a Swin-style relative-position-bias table ``((2Wh-1)*(2Ww-1), heads)`` of a square window to
    ``dst_window``, in float32 with ``align_corners=False`` (what the authors' detection code does)."""
    num_rel, heads = table.shape
    dst_h, dst_w = 2 * dst_window[0] - 1, 2 * dst_window[1] - 1
    if num_rel == dst_h * dst_w:
        return table
    src = int(round(num_rel ** 0.5))
    if src * src != num_rel:
        raise ValueError(f'cannot infer the square window of a relative-position table with {num_rel} rows')
    grid = table.float().t().reshape(1, heads, src, src)
    grid = F.interpolate(grid, size=(dst_h, dst_w), mode=mode, align_corners=False)
    return grid.reshape(heads, dst_h * dst_w).t().to(table.dtype)
