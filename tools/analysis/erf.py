"""Effective receptive field of a backbone stage as a PNG (RepLKNet, Ding et al. CVPR 2022, Sec. 4.2).

    python tools/analysis/erf.py TransNeXt:tiny --out erf.png                      # random weights
    python tools/analysis/erf.py GCViT:tiny --checkpoint gcvit_tiny.pth --images data/demo --num-images 50 \\
        --stage 3 --out erf_gcvit.png

The gradient of the centre of stage ``--stage``'s output (summed over channels) w.r.t. the input,
absolute, summed over the input channels and averaged over ``--num-images`` images at 224x224
(``--images`` folder, searched recursively; smooth random images without one), shown as
``log10(1 + score)`` scaled to [0, 1] with a colour bar. Also prints RepLKNet's high-contribution
area ratios (side of the smallest centred square holding 20/30/50/99% of the contribution).
"""
import argparse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('backbone', help='TYPE:ARCH, e.g. TransNeXt:tiny')
    parser.add_argument('--checkpoint', help='weights (path or URL); random initialisation if omitted')
    parser.add_argument('--images', help='folder of images (default: generated smooth random images)')
    parser.add_argument('--num-images', type=int, default=10)
    parser.add_argument('--size', type=int, default=224, help='input side (default 224, as RepLKNet)')
    parser.add_argument('--stage', type=int, default=-1, help='output stage (default: the last)')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def erf_area_ratios(score, thresholds=(0.2, 0.3, 0.5, 0.99)) -> list:
    """RepLKNet's ``analyze_erf`` numbers: for each threshold t, the side ratio of the smallest centred
    square holding ``t`` of the total contribution (high-contribution area ratio)."""
    data = score / score.sum()
    h, w = data.shape
    cy, cx = h // 2, w // 2
    ratios = []
    for t in thresholds:
        for r in range(1, max(h, w)):
            if data[max(0, cy - r):cy + r + 1, max(0, cx - r):cx + r + 1].sum() >= t:
                break
        ratios.append((t, min(1.0, (2 * r + 1) / min(h, w))))
    return ratios


def save_erf_png(score, path: str, title: str = '', dpi: int = 100) -> str:
    """Write the ERF heatmap (display scaling, colour bar) to ``path`` (matplotlib, Agg backend)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmvit_backbones.analysis.erf import erf_display

    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=dpi)
    im = ax.imshow(erf_display(score), cmap='RdYlGn', vmin=0.0, vmax=1.0)
    ax.set(xticks=[], yticks=[])
    if title:
        ax.set_title(title, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label='contribution (log scale, 3 decades)')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    from mmvit_backbones.analysis.erf import effective_receptive_field, load_images
    from mmvit_backbones.api import build_backbone

    torch.manual_seed(args.seed)
    model = build_backbone(args.backbone, args.checkpoint)
    images = load_images(args.images, args.num_images, args.size, args.seed)
    score = effective_receptive_field(model, images, args.stage)
    weights = 'random weights' if not args.checkpoint else 'pretrained'
    stage = args.stage % len(model.out_indices)
    title = f'ERF {args.backbone}, stage {stage + 1} ({weights}, {len(images)} images, {args.size}px)'
    save_erf_png(score, args.out, title, args.dpi)
    ratios = ', '.join(f'{int(t * 100)}%: {r:.3f}' for t, r in erf_area_ratios(score))
    print(f'{title}\nhigh-contribution area ratios ({ratios})\nsaved to {args.out}')


if __name__ == '__main__':
    main()
