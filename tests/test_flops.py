"""FLOPs counting (mmvit_backbones.analysis.flops, tools/analysis/get_flops.py).

Published rows: each family's ImageNet-table figure at 224x224 under the authors' counting rule, within 2%
(full-size models on CPU; the rest of the table is measured once in docs/flops.md).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import nn

import mmvit_backbones  # noqa: F401
from mmvit_backbones.analysis.flops import (AUTHORS_RULES, count_flops, imagenet_flops, imagenet_settings)

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / 'tools' / 'analysis' / 'get_flops.py'


class SDPA(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


class ExplicitAttention(nn.Module):
    def forward(self, q, k, v):
        return ((q @ k.transpose(-2, -1)) * q.shape[-1]**-0.5).softmax(-1) @ v


def test_sdpa_counts_both_products():
    b, h, n, s, d, dv = 2, 3, 5, 7, 4, 6
    q, k, v = torch.randn(b, h, n, d), torch.randn(b, h, s, d), torch.randn(b, h, s, dv)
    count = count_flops(SDPA(), (q, k, v), 'all')
    assert count.total == b * h * n * s * (d + dv)
    assert count.by_operator == {'attention': b * h * n * s * (d + dv)}
    assert count_flops(SDPA(), (q, k, v), 'mmcv1').total == 0  # mmcv 1.x never saw attention


def test_explicit_matmuls_count_as_sdpa():
    b, h, n, d = 2, 3, 6, 8
    q, k, v = (torch.randn(b, h, n, d) for _ in range(3))
    assert count_flops(ExplicitAttention(), (q, k, v), 'all').total == \
        count_flops(SDPA(), (q, k, v), 'all').total == 2 * b * h * n * n * d
    assert count_flops(ExplicitAttention(), (q, k, v), 'mmcv1').total == 0
    assert count_flops(ExplicitAttention(), (q, k, v), 'mmcv1+attn').total == 2 * b * h * n * n * d


def test_unknown_rule_is_named():
    with pytest.raises(ValueError, match="'fv'"):
        count_flops(SDPA(), tuple(torch.randn(1, 1, 2, 2) for _ in range(3)), 'fv')


def test_aggregated_attention_counted_exactly():
    """TransNeXt stages 1-3: per head and query, 3x3 logits, 3x3 values, learnable tokens (9 each)
    and pooled logits/values (P each): C * N * (27 + 2P); stage 4: full attention 2 * C * N^2."""
    dims, heads, srs = (16, 32, 64, 128), (1, 2, 4, 8), (8, 4, 2, 1)
    model = MODELS.build(dict(type='TransNeXt', arch=dict(embed_dims=dims, depths=(1, 1, 1, 1), num_heads=heads),
                              pos_bias_mode='extrapolate'))
    side, expected = 64, 0
    for i, (c, sr) in enumerate(zip(dims, srs)):
        side //= 4 if i == 0 else 2
        n, p = side * side, (side // sr)**2
        expected += c * n * (27 + 2 * p) if sr > 1 else 2 * c * n * n
    count = count_flops(model, torch.randn(1, 3, 64, 64), 'all')
    assert count.by_operator['attention'] == expected
    assert model.block1[0].attn.attn_impl == 'fast'  # restored after counting


def test_cross_covariance_attention_counted():
    """XCA: q^T k and attn v^T are (d x N) @ (N x d) and (N x d) @ (d x d) per head: 2 * N * C * d per block."""
    c, heads, depth, side = 64, 4, 4, 64
    model = MODELS.build(dict(type='XCiT', arch=dict(embed_dims=c, depth=depth, num_heads=heads, patch_size=16,
                                                     tap_blocks=(0, 1, 2, 3))))
    n = (side // 16)**2
    count = count_flops(model, torch.randn(1, 3, side, side), 'all')
    assert count.by_operator['attention'] == depth * 2 * n * c * (c // heads)


# (type, arch, published GFLOPs of the paper's ImageNet table at 224x224, as quoted in the authors' READMEs)
PUBLISHED_IMAGENET = [
    ('TwinsSVT', 'small', 2.8),
    ('GCViT', 'xxtiny', 2.1),
    ('CrossFormer', 'small', 4.9),
    ('XCiT', 'tiny-12-p16', 1.24),
    ('TransNeXt', 'micro', 2.7),
]


@pytest.mark.parametrize('backbone_type,arch,published', PUBLISHED_IMAGENET,
                         ids=[f'{t}-{a}' for t, a, _ in PUBLISHED_IMAGENET])
def test_published_imagenet_flops(backbone_type, arch, published):
    model = MODELS.build(dict(type=backbone_type, arch=arch, **imagenet_settings(backbone_type, arch)))
    rule = AUTHORS_RULES[model.family]['classification']
    macs, _ = imagenet_flops(model, rule)
    assert abs(macs / 1e9 - published) <= 0.02 * published, \
        f'{backbone_type}:{arch} {macs / 1e9:.3f} GMACs under {rule!r}, published {published}'


def test_help_parses_before_importing():
    """--help must not import torch or mmengine (it answers at once on any machine)."""
    code = ('import runpy, sys; sys.argv = [sys.argv[1], "--help"]\n'
            'try:\n    runpy.run_path(sys.argv[0], run_name="__main__")\nexcept SystemExit:\n    pass\n'
            'print("HEAVY", sorted(m for m in ("torch", "mmengine", "mmdet", "mmseg") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code, str(TOOL)], capture_output=True, text=True, check=True).stdout
    assert '--backbone TYPE:ARCH' in out and '--shape' in out
    assert out.strip().endswith('HEAVY []'), out


def test_cli_backbone_smoke(tmp_path, capsys):
    sys.path.insert(0, str(TOOL.parent))
    try:
        import get_flops
    finally:
        sys.path.remove(str(TOOL.parent))
    arch = dict(embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1], window_sizes=[7, 7, 7, 7])
    out = tmp_path / 'flops.json'
    result = get_flops.main(['--backbone', 'TwinsSVT:custom', '--backbone-args', json.dumps(dict(arch=arch)),
                             '--shape', '64', '96', '--rule', 'mmcv1', '--json', str(out)])
    printed = capsys.readouterr().out
    assert json.loads(out.read_text()) == result
    assert result['input'] == [64, 96] and result['authors_rule'] == 'mmcv1'
    model = MODELS.build(dict(type='TwinsSVT', arch=arch))
    assert result['flops_authors'] == count_flops(model, torch.randn(1, 3, 64, 96), 'mmcv1').total
    assert result['attention_flops_all'] > 0 and result['flops_all'] > result['flops_authors']
    assert "authors' rule (mmcv1)" in printed and 'all attention' in printed


def test_published_upernet_flops():
    """Twins UperNet PCPVT-S, 512x512: 234 G in the authors' README (every attention product counted)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmvit_backbones.analysis.flops import DenseModelForward
    cfg = Config.fromfile(str(ROOT / 'configs' / 'twins' / 'upernet_twins-pcpvt-s_160k_ade20k.py'))
    init_default_scope('mmseg')
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.pop('data_preprocessor', None)
    model = DenseModelForward(MODELS.build(cfg.model))
    count = count_flops(model, torch.randn(1, 3, 512, 512), AUTHORS_RULES['twins']['dense'])
    assert abs(count.total / 1e9 - 234) <= 0.02 * 234, f'{count.total / 1e9:.2f} G'
    assert count.module('model.backbone') < count.total


FAMILIES = ('gcvit', 'twins', 'crossformer', 'xcit', 'transnext')


@pytest.mark.parametrize('family', FAMILIES)
def test_metafile_flops_match_docs(family):
    """Each metafile entry gives Metadata.FLOPs (GMACs, authors' rule) with its input size, at the size of the
    family's tables (COCO 1280x800; ADE20K 512x2048, Twins 512x512), and docs/flops.md's per-config table and
    the family's model-zoo table show that figure; an entry without one is listed "not measured" there."""
    import re

    import yaml
    text = (ROOT / 'configs' / family / 'metafile.yml').read_text()
    flops_md = (ROOT / 'docs' / 'flops.md').read_text().splitlines()
    zoo = (ROOT / 'docs' / f'{family}.md').read_text()
    for m in yaml.safe_load(text)['Models']:
        md = m['Metadata']
        expected = {'COCO': '1280x800', 'ADE20K': '512x512' if family == 'twins' else '512x2048'}[md['Training Data']]
        rows = [line for line in flops_md if f"`{m['Name']}`" in line and f'| {expected} |' in line]
        assert len(rows) == 1, f"{m['Name']}: {len(rows)} rows at {expected} in docs/flops.md's per-config table"
        entry = re.search(rf"^  - Name: {re.escape(m['Name'])}$(.*?)(?=^  - Name: |\Z)", text, re.M | re.S).group(1)
        line = re.search(r'^      FLOPs: ([0-9.]+)  # (\d+x\d+)$', entry, re.M)
        if 'FLOPs' not in md:
            assert line is None and '| not measured |' in rows[0], f"{m['Name']}: no FLOPs in the metafile"
            continue
        assert isinstance(md['FLOPs'], float) and line, f"{m['Name']}: FLOPs {md['FLOPs']!r} without '# HxW'"
        assert line.group(2) == expected, f"{m['Name']}: FLOPs at {line.group(2)}, the family's tables use {expected}"
        figure = f"{md['FLOPs']:.2f}"
        assert f'| {figure} (' in rows[0], f"{m['Name']}: {figure} G, docs/flops.md says {rows[0]}"
        assert figure in zoo, f"{m['Name']}: {figure} not in docs/{family}.md"
