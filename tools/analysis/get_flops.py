"""FLOPs (multiply-accumulates) and parameters of a whole detector/segmentor or of a backbone alone.

    python tools/analysis/get_flops.py configs/gcvit/mask_rcnn_gcvit-t_fpn_3x_coco.py --shape 1280 800
    python tools/analysis/get_flops.py --backbone TwinsPCPVT:small --shape 224 224
    python tools/analysis/get_flops.py --backbone GCViT:tiny --imagenet     # compare with the ImageNet table

Counts go through ``mmengine.analysis.FlopAnalyzer`` with the handles of
``mmvit_backbones.analysis.flops``. Two figures are printed side by side:

* ``all attention``: every multiply-accumulate of attention counted (``scaled_dot_product_attention``,
  matmuls, TransNeXt's aggregated attention), mmengine's conventions otherwise;
* ``authors' rule``: the rule behind the family's published table (``--rule`` overrides it): ``all``,
  ``mmcv1`` (mmcv 1.x ``get_flops.py``: no attention product) or ``mmcv1+attn``; see docs/flops.md.

"GFLOPs" in the papers of these families are GMACs, and so are the figures printed here.
Whole models run the dummy forward of mmdet 2.x / mmseg 0.x ``get_flops.py`` (two-stage detectors:
1000 proposals); the default input is 1280x800 (H x W) for detectors, 512x512 for segmentors and
224x224 for a backbone alone.
"""
import argparse
import json
import sys
from pathlib import Path

RULE_CHOICES = ('all', 'mmcv1', 'mmcv1+attn')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='detector or segmentor config file')
    parser.add_argument('--backbone', metavar='TYPE:ARCH', help='a backbone alone, e.g. TwinsSVT:small')
    parser.add_argument('--backbone-args', metavar='JSON', default='{}',
                        help='extra constructor arguments of --backbone, as a JSON object ("arch" replaces ARCH)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='N',
                        help='input height and width (one number: square)')
    parser.add_argument('--rule', choices=RULE_CHOICES,
                        help="counting rule of the second column (default: the family's authors' rule)")
    parser.add_argument('--task', choices=('classification', 'dense'),
                        help="which of the authors' tables picks the rule (default: classification with "
                        "--imagenet, dense otherwise)")
    parser.add_argument('--imagenet', action='store_true',
                        help='with --backbone: the figure comparable to the paper\'s ImageNet table (ImageNet '
                        'geometry, dense-only modules removed, classifier and ImageNet-only layers added '
                        'analytically)')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='override config settings, as in tools/train.py')
    parser.add_argument('--json', metavar='FILE', help='also write the figures to FILE')
    args = parser.parse_args(argv)
    if (args.config is None) == (args.backbone is None):
        parser.error('give either CONFIG or --backbone TYPE:ARCH')
    if args.backbone is not None and ':' not in args.backbone:
        parser.error(f'--backbone {args.backbone!r} must be TYPE:ARCH, e.g. TwinsPCPVT:small')
    if args.imagenet and args.backbone is None:
        parser.error('--imagenet needs --backbone TYPE:ARCH')
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error(f'--shape takes 1 or 2 numbers (H W), got {args.shape}')
    try:
        args.backbone_args = json.loads(args.backbone_args)
    except json.JSONDecodeError as e:
        parser.error(f'--backbone-args is not JSON: {e}')
    return args


def build_backbone(spec: str, extra: dict):
    from mmvit_backbones.api import parse_backbone_name
    cls, arch = parse_backbone_name(spec)
    return cls(**dict(dict(arch=arch), **extra))  # extra may replace arch by a dict


def build_dense_model(config: str, cfg_options: list):
    from mmengine.config import Config, DictAction
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    if cfg_options:
        if not all('=' in kv for kv in cfg_options):
            raise SystemExit(f'--cfg-options takes KEY=VALUE pairs, got {cfg_options}')
        cfg.merge_from_dict({k: DictAction._parse_iterable(v) for k, v in (kv.split('=', 1) for kv in cfg_options)})
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmengine.registry import MODELS
    model_cfg = cfg.model
    backbone = model_cfg.get('backbone', {})
    backbone.pop('init_cfg', None)  # random weights: no download
    backbone.pop('pretrained', None)
    model_cfg.pop('pretrained', None)
    model_cfg.pop('data_preprocessor', None)
    return MODELS.build(model_cfg), cfg.get('default_scope', 'mmdet')


def family_of(backbone) -> str:
    return getattr(backbone, 'family', '') or type(backbone).__name__.lower()


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    import mmvit_backbones  # noqa: F401  (registers the backbones)
    from mmvit_backbones.analysis.flops import (AUTHORS_RULES, DenseModelForward, count_flops, imagenet_flops,
                                                imagenet_settings)

    if args.backbone is not None:
        extra = dict(args.backbone_args)
        if args.imagenet:
            extra = dict(imagenet_settings(*args.backbone.split(':', 1)), **extra)
        model = build_backbone(args.backbone, extra)
        backbone, name, kind = model, args.backbone, 'backbone'
        default_shape = (224, 224)
    else:
        dense, scope = build_dense_model(args.config, args.cfg_options)
        model = DenseModelForward(dense)
        backbone, name = dense.backbone, args.config
        kind = 'segmentor' if scope == 'mmseg' else 'detector'
        default_shape = (512, 512) if kind == 'segmentor' else (1280, 800)
    shape = default_shape if args.shape is None else (args.shape * 2)[:2]
    if args.imagenet and shape[0] != shape[1]:
        raise SystemExit(f'--imagenet needs a square --shape, got {shape}')
    task = args.task or ('classification' if args.imagenet else 'dense')
    family = family_of(backbone)
    authors = args.rule or AUTHORS_RULES.get(family, {}).get(task, 'all')
    inputs = torch.randn(1, 3, *shape)

    rules = ['all'] if authors == 'all' else ['all', authors]
    if args.imagenet:
        counts = {}
        for rule in rules:
            macs, counts[rule] = imagenet_flops(model, rule, shape[0])
            counts[rule].total = macs
    else:
        counts = {rule: count_flops(model, inputs, rule) for rule in rules}
    counts.setdefault(authors, counts['all'])
    prefix = 'model.backbone' if kind != 'backbone' else ''
    params = sum(p.numel() for p in model.parameters())
    backbone_params = sum(p.numel() for p in backbone.parameters())

    def g(n):
        return f'{n / 1e9:.2f}'

    rows = [('whole model' if kind != 'backbone' else 'backbone', counts['all'].total, counts[authors].total)]
    if kind != 'backbone':
        rows.append(('  backbone', counts['all'].module(prefix), counts[authors].module(prefix)))
    rows.append(('  of which attention', counts['all'].by_operator.get('attention', 0),
                 counts[authors].by_operator.get('attention', 0)))
    head = f"authors' rule ({authors})" + (' = all' if authors == 'all' else '')
    print(f'{kind}: {name}')
    print(f'input: 1x3x{shape[0]}x{shape[1]}  family: {family}  table: {task}  params: '
          f'{params / 1e6:.2f} M' + (f' (backbone {backbone_params / 1e6:.2f} M)' if kind != 'backbone' else ''))
    print(f'{"GFLOPs (GMACs)":<22}{"all attention":>16}{head:>32}')
    for label, a, b in rows:
        print(f'{label:<22}{g(a):>16}{g(b):>32}')
    if args.imagenet:
        print('note: ImageNet-comparable: ImageNet geometry, dense-only modules removed, classifier (and XCiT '
              'class attention) added analytically; see docs/flops.md')
    elif kind == 'backbone':
        print('note: the dense backbone alone (no classifier); --imagenet compares with ImageNet tables')
    result = dict(model=name, kind=kind, input=list(shape), family=family, task=task, authors_rule=authors,
                  params=params, backbone_params=backbone_params,
                  flops_all=counts['all'].total, flops_authors=counts[authors].total,
                  backbone_flops_all=counts['all'].module(prefix),
                  backbone_flops_authors=counts[authors].module(prefix),
                  attention_flops_all=counts['all'].by_operator.get('attention', 0))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == '__main__':
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
