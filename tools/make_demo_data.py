"""Generate the embedded demo dataset (COCO and ADE20K layout) used by configs/demo/.

    python tools/make_demo_data.py [ROOT=data/demo] [--num-train 192] [--num-val 48] [--size 128] [--seed 0]

The same seed writes the same files (see mmvit_backbones/demo.py for what the scenes look like).
"""
import argparse


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', nargs='?', default='data/demo', help='output folder (default: data/demo)')
    parser.add_argument('--num-train', type=int, default=192, help='training images (default: 192)')
    parser.add_argument('--num-val', type=int, default=48, help='held-out validation images (default: 48)')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels (default: 128)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()  # before the imports below, so --help answers at once
    from mmvit_backbones.demo import make_demo_data

    paths = make_demo_data(args.root, args.num_train, args.num_val, args.size, args.seed)
    print(f"demo data written: COCO layout in {paths['coco']}, ADE20K layout in {paths['ade']}")


if __name__ == '__main__':
    main()
