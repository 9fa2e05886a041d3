"""Stochastic depth: mmcv's ``DropPath`` plus the per-block schedule every family uses."""
from typing import List, Sequence

from mmcv.cnn.bricks import DropPath  # noqa: F401  (re-exported: one DropPath for all families)


def drop_path_schedule(drop_path_rate: float, depths: Sequence[int]) -> List[List[float]]:
    """Rates rising linearly from 0 to ``drop_path_rate`` over all blocks, one list per stage (the schedule
    of Swin, PVT, Twins, GCViT, CrossFormer and TransNeXt: ``torch.linspace(0, rate, sum(depths))``)."""
    total = sum(depths)
    step = drop_path_rate / (total - 1) if total > 1 else 0.0
    rates = [step * i for i in range(total)]
    return [rates[sum(depths[:i]):sum(depths[:i + 1])] for i in range(len(depths))]
