"""Generate the embedded demo dataset (COCO and ADE20K layout) used by configs/demo/.

    python tools/make_demo_data.py [ROOT=data/demo] [--num-train 96] [--num-val 24] [--size 128]
"""
import argparse

from mmvit_backbones.demo import make_demo_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('root', nargs='?', default='data/demo')
    parser.add_argument('--num-train', type=int, default=96)
    parser.add_argument('--num-val', type=int, default=24)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    paths = make_demo_data(args.root, args.num_train, args.num_val, args.size, args.seed)
    print(f"demo data written: COCO layout in {paths['coco']}, ADE20K layout in {paths['ade']}")


if __name__ == '__main__':
    main()
