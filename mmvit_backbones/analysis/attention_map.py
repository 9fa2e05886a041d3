"""Attention maps of one block: where the centre query looks (TransNeXt Fig. 7/8 style), or XCiT's
channel (cross-covariance) attention.

Nothing in the models changes. A forward pre-hook on the chosen block records its input (and the
map size); while that block runs, :func:`record_sdpa` replaces ``F.scaled_dot_product_attention``
by the same math written out (``softmax(q k^T * scale + mask) v``), which keeps the probabilities.
Each family's windows or groups are mapped back to map positions by partitioning a map of position
indices with the family's own partition function. Attentions that are not an SDPA call are
recomputed from the recorded block input with the block's own layers: TransNeXt's aggregated
attention (3x3 neighbourhood + pooled keys in one softmax; the learnable-token term added after the
softmax is not a probability and is left out) and XCiT's cross-covariance attention (``d x d`` per
head, shown as a block-diagonal ``C x C`` matrix).
"""
import contextlib
import math
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmvit_backbones.models.layers.windows import window_partition


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


def _positions(h: int, w: int, hp: int, wp: int) -> torch.Tensor:
    """``(1, hp, wp, 1)`` row-major position index of each map cell, -1 on the bottom/right padding."""
    pos = torch.full((1, hp, wp, 1), -1.0)
    pos[0, :h, :w, 0] = torch.arange(h * w, dtype=torch.float32).view(h, w)
    return pos


def _row_to_map(probs: torch.Tensor, query_pos: torch.Tensor, key_pos: torch.Tensor, centre: int,
                num_cells: int) -> np.ndarray:
    """``probs`` (G, heads, Nq, Nk) of G windows/groups whose tokens sit at ``query_pos``/``key_pos``
    (G, N) -> the head-averaged attention of the query at ``centre`` scattered over ``num_cells``."""
    g, t = (query_pos == centre).nonzero()[0].tolist()
    row = probs[g, :, t].mean(0)  # (Nk,)
    keys = key_pos[g].long()
    valid = keys >= 0
    out = torch.zeros(num_cells)
    out[keys[valid]] = row[valid]
    return out.numpy()


def _block(model: nn.Module, stage: int, block: int) -> nn.Module:
    name = type(model).__name__
    try:
        if name == 'GCViT':
            return model.levels[stage].blocks[block]
        if name in ('TwinsPCPVT', 'TwinsSVT'):
            return model.stages[stage].blocks[block]
        if name == 'CrossFormer':
            return model.layers[stage].blocks[block]
        if name == 'XCiT':
            return model.blocks[list(model._stage_blocks(stage))[block]]
        if name == 'TransNeXt':
            return getattr(model, f'block{stage + 1}')[block]
    except (IndexError, AttributeError) as e:
        raise ValueError(f'{name} has no block {block} in stage {stage}') from e
    raise TypeError(f'attention maps support GCViT, TwinsPCPVT, TwinsSVT, CrossFormer, XCiT and TransNeXt, '
                    f'got {name}')


def attention_map(model: nn.Module, image: torch.Tensor, stage: int, block: int) -> Dict[str, object]:
    """The attention of block ``block`` of stage ``stage`` on ``image`` ``(1, 3, H, W)``.

    Returns ``kind='spatial'`` with ``map`` ``(h, w)`` (the centre query's head-averaged attention
    over the stage's map, summing to 1 over the keys it sees), ``query`` ``(row, col)`` and
    ``description``; or, for XCiT, ``kind='channel'`` with ``map`` ``(C, C)`` (block-diagonal over heads).
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'attention_map expects one image (1, C, H, W), got {tuple(image.shape)}')
    model.eval()
    blk = _block(model, stage, block)
    captured = {}

    def pre_hook(module, args):
        captured['args'] = args

    handle = blk.register_forward_pre_hook(pre_hook)
    attn = blk.attn
    name = type(model).__name__
    with record_sdpa() as rec, torch.no_grad():
        on = attn.register_forward_pre_hook(lambda m, a: setattr(rec, 'active', True))
        off = attn.register_forward_hook(lambda m, a, o: setattr(rec, 'active', False))
        try:
            model(image)
        finally:
            handle.remove()
            on.remove()
            off.remove()
        if name == 'XCiT':
            return _xcit(attn, captured['args'][0])
        if name == 'TransNeXt' and hasattr(attn, 'sr'):
            return _transnext_aggregated(attn, *captured['args'][:2])
        probs = torch.cat(rec.probs)  # chunked inference may split the groups over several calls
    return _spatial(name, blk, captured['args'], probs)


def _spatial(name: str, blk: nn.Module, args, probs: torch.Tensor) -> Dict[str, object]:
    if name in ('GCViT', 'CrossFormer'):
        _, h, w, _ = args[0].shape
    else:  # token inputs with the map size: Twins (tokens, hw), TransNeXt (tokens, ctx)
        h, w = args[1] if name.startswith('Twins') else args[1].size
    centre = (h // 2) * w + w // 2
    if name == 'GCViT':
        ws = blk.window_size
        hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
        pos = window_partition(_positions(h, w, hp, wp), ws, ws)[..., 0]
        kind = 'global' if blk.attn.is_global else 'local'
        desc = f'{kind} window attention ({ws}x{ws} windows)'
        out = _row_to_map(probs, pos, pos, centre, h * w)
    elif name == 'CrossFormer':
        from mmvit_backbones.models.backbones.crossformer import group_partition, plan_groups
        plan = plan_groups(h, w, blk.group_size, blk.interval, blk.long_distance, blk.grouping)
        pos = group_partition(_positions(h, w, *plan.padded), plan.group_h, plan.group_w, plan.interval)[..., 0]
        desc = (f"{'LDA' if plan.interval > 1 else 'SDA'} group attention ({plan.group_h}x{plan.group_w} tokens"
                f"{f', interval {plan.interval}' if plan.interval > 1 else ''})")
        out = _row_to_map(probs, pos, pos, centre, h * w)
    elif name.startswith('Twins') and hasattr(blk.attn, 'window_size'):
        ws = blk.attn.window_size
        hp, wp = math.ceil(h / ws) * ws, math.ceil(w / ws) * ws
        pos = window_partition(_positions(h, w, hp, wp), ws, ws)[..., 0]
        desc = f'locally-grouped attention ({ws}x{ws} windows)'
        out = _row_to_map(probs, pos, pos, centre, h * w)
    else:  # full or sub-sampled keys: Twins GSA, TransNeXt stage 4
        sr = getattr(blk.attn, 'sr_ratio', 1)
        kh, kw = (h // sr, w // sr) if sr > 1 else (h, w)
        row = probs[0, :, centre].mean(0).view(1, 1, kh, kw)
        if sr > 1:  # each key summarises an sr x sr cell: spread its weight over the cell
            row = F.interpolate(row, scale_factor=sr, mode='nearest') / sr ** 2
            row = F.pad(row, (0, w - row.shape[-1], 0, h - row.shape[-2]))
        desc = f'global sub-sampled attention (keys {kh}x{kw}, sr {sr})' if sr > 1 else 'full attention'
        out = row.reshape(-1).numpy()
    return dict(kind='spatial', map=out.reshape(h, w), query=(h // 2, w // 2), description=desc)


def _transnext_aggregated(attn: nn.Module, x: torch.Tensor, ctx) -> Dict[str, object]:
    """Centre query of TransNeXt's aggregated attention (Sec. 3.2): one softmax over its 3x3 neighbours
    and the pooled keys; the pooled weights are spread over the cells each pooled key averages."""
    b, n, c = x.shape
    h, w = ctx.size
    cy, cx = h // 2, w // 2
    centre = cy * w + cx
    q_norm = F.normalize(attn.split_heads(attn.q(x)), dim=-1)
    q_scaled = attn.scale_queries(q_norm, ctx.length_scale)[0, :, centre]  # (heads, d)
    k_local, _ = attn.split_heads(attn.kv(x)).chunk(2, dim=1)
    k_local = F.normalize(k_local, dim=-1)[0]  # (heads, N, d)
    x_nchw = x.transpose(1, 2).reshape(b, c, h, w)
    pooled = F.adaptive_avg_pool2d(attn.act(attn.sr(x_nchw)), ctx.pool_size)
    pooled = attn.norm(pooled.flatten(2).transpose(1, 2))
    k_pool, _ = attn.split_heads(attn.kv(pooled)).chunk(2, dim=1)
    k_pool = F.normalize(k_pool, dim=-1)[0]  # (heads, P, d)
    local, cells = [], []
    for i, (dy, dx) in enumerate((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)):
        y, xx = cy + dy, cx + dx
        if 0 <= y < h and 0 <= xx < w:
            local.append((q_scaled * k_local[:, y * w + xx]).sum(-1) + attn.relative_pos_bias_local[:, i])
            cells.append(y * w + xx)
    pool_bias = attn.position_bias(ctx.bias_geometry).full()[:, centre]  # (heads, P)
    pool_logits = (q_scaled[:, None] @ k_pool.transpose(-2, -1))[:, 0] + pool_bias  # (heads, P)
    logits = torch.cat([torch.stack(local, -1), pool_logits], dim=-1)
    probs = logits.softmax(-1).mean(0)  # (len(cells) + P,)
    ph, pw = ctx.pool_size
    pool_map = torch.zeros(h, w)
    # adaptive average pooling bins: rows floor(i*h/ph) .. ceil((i+1)*h/ph)
    weights = probs[len(cells):].view(ph, pw)
    for i in range(ph):
        r0, r1 = (i * h) // ph, -(-(i + 1) * h // ph)
        for j in range(pw):
            c0, c1 = (j * w) // pw, -(-(j + 1) * w // pw)
            pool_map[r0:r1, c0:c1] += weights[i, j] / ((r1 - r0) * (c1 - c0))
    out = pool_map.view(-1)
    out[torch.tensor(cells)] += probs[:len(cells)]
    return dict(kind='spatial', map=out.view(h, w).numpy(), query=(cy, cx),
                description=f'aggregated attention (3x3 + pooled {ph}x{pw})')


def _xcit(attn: nn.Module, x: torch.Tensor) -> Dict[str, object]:
    from mmvit_backbones.models.backbones.xcit import cross_covariance_attention
    b, n, c = x.shape
    heads = attn.num_heads
    d = c // heads
    q, k, _ = attn.qkv(x).reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    probs = cross_covariance_attention(q, k, attn.temperature)[0]  # (heads, d, d)
    full = torch.block_diag(*probs)  # (C, C)
    return dict(kind='channel', map=full.numpy(), heads=heads,
                description=f'cross-covariance (channel) attention, {heads} heads of {d}x{d}')


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
        ax.set_xlabel('key channel')
        ax.set_ylabel('query channel')
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
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04, label='attention of the centre query')
    if title:
        fig.suptitle(title, fontsize=8)
    fig.savefig(path)
    plt.close(fig)
    return path
