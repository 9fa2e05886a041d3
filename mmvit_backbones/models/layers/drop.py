"""Stochastic depth: mmcv's ``DropPath`` plus the per-block schedule every family uses."""
from typing import List, Sequence

from mmcv.cnn.bricks import DropPath  # noqa: F401  (re-exported: one DropPath for all families)


def drop_path_schedule(drop_path_rate: float, depths: Sequence[int]) -> List[List[float]]:
    """Linearly increasing drop-path rates from 0 to ``drop_path_rate`` over all blocks, split per stage.

    Returns one list of rates per stage (``len(result[i]) == depths[i]``), the schedule of Swin,
    PVT, Twins, GCViT, CrossFormer and TransNeXt (``torch.linspace(0, rate, sum(depths))``).
    """
    total = sum(depths)
    if total == 0:
        return [[] for _ in depths]
    step = drop_path_rate / (total - 1) if total > 1 else 0.0
    rates = [step * i for i in range(total)]
    out, start = [], 0
    for depth in depths:
        out.append(rates[start:start + depth])
        start += depth
    return out
