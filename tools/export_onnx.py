"""Export a backbone to ONNX with dynamic batch, height and width, and check it with onnxruntime.

    python tools/export_onnx.py TwinsSVT:small --out twins_svt_s.onnx     # example 256x256 (see --shape)
    python tools/export_onnx.py GCViT:tiny --checkpoint gcvit_tiny.pth --shape 512 512 --out gcvit.onnx
    python tools/export_onnx.py XCiT:small-12-p16 --out xcit.onnx --check 640x480 333x517

The graph has one input ``input`` (B, C, H, W) and one output ``feat<i>`` per stage of ``out_indices``
(NCHW, strides 4/8/16/32). It is exported through ``torch.export`` and ``torch.onnx.export(dynamo=True)``
(needs ``onnx``, ``onnxscript``; ``pip install "mmvit_backbones[export]"``), or the TorchScript exporter
for GC ViT.
Unless ``--no-check``, onnxruntime (CPU)
runs it at two sizes other than the export size (one not divisible by 32), and the tool exits with
an error if the features differ from PyTorch's by more than ``--tolerance`` (max abs error relative to
the largest feature magnitude).
"""
import argparse
import json
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('backbone', help='TYPE:ARCH or family-arch, e.g. TransNeXt:tiny, twins-svt-small, XCiT:small-12-p16')
    parser.add_argument('--checkpoint', help='weights loaded as init_cfg=Pretrained (path or URL); random if omitted')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='example input size for the export (default 224 224; 256 256 for TwinsSVT and '
                        'CrossFormer, whose stage maps must span two windows)')
    parser.add_argument('--batch', type=int, default=2, help='example batch (>= 2, the batch stays dynamic)')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--exporter', choices=['dynamo', 'torchscript'],
                        help="torch.onnx exporter (default: the backbone's onnx_exporter attribute)")
    parser.add_argument('--out-indices', type=int, nargs='+', help='stages to return (default: all)')
    parser.add_argument('--check', nargs='+', metavar='HxW',
                        help='sizes for the onnxruntime check (default: two sizes other than --shape)')
    parser.add_argument('--no-check', action='store_true', help='skip the onnxruntime check')
    parser.add_argument('--tolerance', type=float, default=1e-4)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # heavy imports after parsing, so --help answers at once
    from mmvit_backbones.api import build_backbone
    from mmvit_backbones.onnx_export import (default_check_sizes, default_export_shape, export_onnx,
                                             exported_size_range, onnx_parity)

    kwargs = {}
    if args.out_indices:
        kwargs['out_indices'] = tuple(args.out_indices)
    model = build_backbone(args.backbone, args.checkpoint, **kwargs)
    shape = tuple(args.shape) if args.shape else default_export_shape(model)
    export_onnx(model, args.out, shape, batch=args.batch, opset=args.opset, exporter=args.exporter)
    print(f'exported {args.backbone} ({"random weights" if not args.checkpoint else args.checkpoint}) '
          f'at {shape[0]}x{shape[1]} to {args.out} (dynamic batch, H, W; opset {args.opset})')
    low, high = exported_size_range(args.out)
    print(f'the exported model computes the backbone for sides in [{low}, {high}] and refuses other sizes')
    if args.no_check:
        return 0
    if args.check:
        try:
            sizes = [tuple(int(v) for v in s.lower().split('x')) for s in args.check]
        except ValueError:
            raise SystemExit(f'--check {args.check}: expected sizes like 640x480')
    else:
        sizes = default_check_sizes(shape)
    rows = onnx_parity(model, args.out, sizes)
    for row in rows:
        if row['refused']:
            print(f"onnxruntime at {row['size']}: refused (outside the exported size range)")
        else:
            print(f"onnxruntime vs PyTorch at {row['size']}: max rel. error {row['max_rel_error']:.2e}")
    print(json.dumps(rows))
    bad = [r for r in rows if not r['refused'] and not r['max_rel_error'] <= args.tolerance]
    if bad:
        print(f'ERROR: ONNX features differ from PyTorch beyond {args.tolerance:g} at '
              f"{', '.join(r['size'] for r in bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
