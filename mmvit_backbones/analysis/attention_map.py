"""Attention maps of one block: where the centre query looks (TransNeXt Fig. 7/8 style), or XCiT's channel
(cross-covariance) attention.

Nothing in the models changes: hooks on the block (``model.stage_blocks(stage)[block]``) record its inputs, and
while it runs :func:`record_sdpa` writes ``F.scaled_dot_product_attention`` out (``softmax(q k^T * scale + mask) v``)
to keep the probabilities. The block's ``attention_map(inputs, probs)`` maps them back to positions of the stage's
map or, for an attention that is not an SDPA call (TransNeXt's aggregated, XCiT's cross-covariance attention),
recomputes it from the recorded inputs with the block's own layers.
"""
import contextlib
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class _SDPARecorder:
    """Replaces ``F.scaled_dot_product_attention`` while :attr:`active`, keeping the probabilities."""

    def __init__(self) -> None:
        self.active = False
        self.probs: List[torch.Tensor] = []
        self._orig = F.scaled_dot_product_attention

    def __call__(self, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if not self.active:
            return self._orig(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                              **kwargs)
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        logits = (q.float() @ k.float().transpose(-2, -1)) * scale
        if attn_mask is not None:
            logits = logits.masked_fill(~attn_mask, float('-inf')) if attn_mask.dtype == torch.bool \
                else logits + attn_mask.float()
        probs = logits.softmax(dim=-1)
        self.probs.append(probs.detach())
        return (probs @ v.float()).to(v.dtype)


@contextlib.contextmanager
def record_sdpa():
    recorder = _SDPARecorder()
    F.scaled_dot_product_attention = recorder
    try:
        yield recorder
    finally:
        F.scaled_dot_product_attention = recorder._orig


def attention_map(model: nn.Module, image: torch.Tensor, stage: int, block: int) -> Dict[str, object]:
    """The attention of block ``block`` of stage ``stage`` on ``image`` ``(1, 3, H, W)``: ``kind='spatial'`` with
    ``map`` ``(h, w)`` (the centre query's head-averaged attention over the stage's map, summing to 1 over the keys
    it sees), ``query`` ``(row, col)`` and ``description``; or ``kind='channel'`` with ``map`` ``(C, C)`` (XCiT:
    block-diagonal over heads)."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'attention_map expects one image (1, C, H, W), got {tuple(image.shape)}')
    model.eval()
    blocks = model.stage_blocks(stage)
    if not 0 <= block < len(blocks):
        raise ValueError(f'{type(model).__name__} has no block {block} in stage {stage} ({len(blocks)} blocks)')
    blk = blocks[block]
    captured = {}

    def start(module, args):
        captured['inputs'] = args
        recorder.active = True

    with record_sdpa() as recorder, torch.no_grad():
        on = blk.register_forward_pre_hook(start)
        off = blk.register_forward_hook(lambda m, a, o: setattr(recorder, 'active', False))
        try:
            model(image)
        finally:
            on.remove()
            off.remove()
        probs = torch.cat(recorder.probs) if recorder.probs else None  # chunked inference: several calls
        return blk.attention_map(captured['inputs'], probs)


def save_attention_png(result: Dict[str, object], image: Optional[np.ndarray], path: str, title: str = '',
                       dpi: int = 100) -> str:
    """Write the map with a colour bar (matplotlib, Agg). Spatial maps are shown beside the input image
    (``image``: ``(H, W, 3)`` in [0, 1]) with the query marked; figure size 8.4 x 3.6 in at ``dpi``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    data = np.asarray(result['map'])
    if result['kind'] == 'channel':
        fig, ax = plt.subplots(figsize=(4.6, 4.0), dpi=dpi)
        im = ax.imshow(data, cmap='viridis')
        ax.set(xlabel='key channel', ylabel='query channel')
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='attention')
        ax.set_title(str(result['description']), fontsize=7)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), dpi=dpi)
        qy, qx = result['query']
        h, w = data.shape
        if image is not None:
            axes[0].imshow(image)
            ih, iw = image.shape[:2]
            axes[0].plot((qx + 0.5) * iw / w, (qy + 0.5) * ih / h, marker='*', color='red', markersize=12)
        axes[0].set_title('input, centre query', fontsize=8)
        # log colours over three decades: the few large local weights would hide the pooled/sub-sampled ones
        vmax = float(data.max())
        cmap = matplotlib.colormaps['inferno']
        cmap = cmap.with_extremes(bad=cmap(0.0))
        im = axes[1].imshow(np.ma.masked_less_equal(data, 0), cmap=cmap, interpolation='nearest',
                            norm=matplotlib.colors.LogNorm(vmin=vmax * 1e-3, vmax=vmax, clip=True))
        axes[1].plot(qx, qy, marker='*', color='cyan', markersize=10)
        axes[1].set_title(str(result['description']), fontsize=7)
        for ax in axes:
            ax.set(xticks=[], yticks=[])
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label='attention of the centre query')
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path
