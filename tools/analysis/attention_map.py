"""Where the centre query of one block looks (TransNeXt Fig. 7/8 style), as a PNG with a colour bar.

    python tools/analysis/attention_map.py TransNeXt:tiny --stage 0 --block 0 --out attn.png   # random weights
    python tools/analysis/attention_map.py TwinsSVT:small --stage 2 --block 1 --image demo.jpg --out gsa.png
    python tools/analysis/attention_map.py XCiT:small-12-p16 --stage 3 --out xca.png           # channel attention

Spatial attentions (GC ViT local/global windows, Twins LSA/GSA, CrossFormer SDA/LDA groups,
TransNeXt aggregated and full attention) are drawn as the head-averaged attention of the centre
query over the stage's map, beside the input with the query marked; XCiT's attention mixes
channels, so its block-diagonal C x C cross-covariance attention (one d x d block per head) is drawn.
``--stage``/``--block`` count from 0 (XCiT: the block within the stage's blocks). The input is
``--image`` resized to ``--size`` or, without one, a smooth random image.
"""
import argparse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('backbone', help='TYPE:ARCH, e.g. TransNeXt:tiny')
    parser.add_argument('--checkpoint', help='weights (path or URL); random initialisation if omitted')
    parser.add_argument('--image', help='an image file (default: a generated smooth random image)')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--stage', type=int, default=0)
    parser.add_argument('--block', type=int, default=0)
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--dpi', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def save_attention_png(result: dict, image, path: str, title: str = '', dpi: int = 100) -> str:
    """Write the map with a colour bar (matplotlib, Agg). Spatial maps are shown beside the input image
    (``image``: ``(H, W, 3)`` in [0, 1]) with the query marked; figure size 8.4 x 3.6 in at ``dpi``."""
    import matplotlib
    import numpy as np
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


def main(argv=None) -> None:
    args = parse_args(argv)
    import os.path as osp
    import tempfile

    import torch

    from mmvit_backbones.analysis.attention_map import attention_map
    from mmvit_backbones.analysis.erf import IMAGENET_MEAN, IMAGENET_STD, load_images
    from mmvit_backbones.api import build_backbone

    torch.manual_seed(args.seed)
    model = build_backbone(args.backbone, args.checkpoint)
    if args.image:
        if not osp.isfile(args.image):
            raise SystemExit(f'--image {args.image!r}: no such file')
        with tempfile.TemporaryDirectory() as folder:  # load_images reads folders: link the one file
            import os
            os.symlink(osp.abspath(args.image), osp.join(folder, osp.basename(args.image)))
            image = load_images(folder, 1, args.size)
    else:
        image = load_images(None, 1, args.size, args.seed)
    result = attention_map(model, image, args.stage, args.block)
    shown = (image[0] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
    shown = shown.clamp(0, 1).permute(1, 2, 0).numpy()
    weights = 'random weights' if not args.checkpoint else 'pretrained'
    title = f'{args.backbone} stage {args.stage} block {args.block} ({weights})'
    print(result['description'])
    save_attention_png(result, shown, args.out, title, args.dpi)
    print(f'{title}\nsaved to {args.out}')


if __name__ == '__main__':
    main()
