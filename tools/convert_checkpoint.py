"""Convert an official (or dense) checkpoint of a family to this package's keys, offline.

    python tools/convert_checkpoint.py --family twins SRC DST [--arch small] [--type TwinsPCPVT]
                                       [--kwargs '{"window_size": 24}'] [--trust]

The output is ``{'state_dict': ..., 'meta': ...}`` with every backbone parameter of the target model
(the ones the source lacks, like new output norms, at their initialisation), loadable by
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` or ``torch.load(weights_only=True)``. Without
``--arch`` each arch of the family is tried and the first whose shapes fit is used.
``--trust`` allows full unpickling of a source that holds non-tensor Python objects (only for files
you trust: unpickling can run code).
"""
import argparse
import json
import os
import tempfile


def family_types(family: str) -> list:
    """Registered backbone classes of ``family`` (e.g. twins -> TwinsPCPVT, TwinsSVT)."""
    from mmengine.registry import MODELS

    from mmvit_backbones.models.backbones import PyramidBackbone
    found, stack = [], list(PyramidBackbone.__subclasses__())
    while stack:
        cls = stack.pop()
        stack += cls.__subclasses__()
        if cls.family == family and MODELS.get(cls.__name__) is cls:
            found.append(cls)
    if not found:
        raise SystemExit(f'unknown family {family!r}')
    return sorted(found, key=lambda c: c.__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--family', required=True, help='gcvit | twins | crossformer | xcit | transnext')
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument('--type', help='registry type when a family has several (e.g. TwinsSVT)')
    parser.add_argument('--arch', help='arch name (default: inferred from the shapes)')
    parser.add_argument('--kwargs', default='{}', help='JSON of extra constructor arguments of the backbone')
    parser.add_argument('--trust', action='store_true', help='allow full unpickling of a trusted source file')
    args = parser.parse_args()  # before the heavy imports, so that --help answers at once

    import torch
    from mmengine.logging import print_log

    import mmvit_backbones  # noqa: F401  (registers the backbones and converters)
    from mmvit_backbones.checkpoint import (CheckpointError, check_family, convert_state_dict,
                                            extract_state_dict, read_checkpoint)
    src = args.src
    if args.trust:  # re-save the tensors so the regular weights-only path reads them
        ckpt = torch.load(src, map_location='cpu', weights_only=False)
        tmp = tempfile.NamedTemporaryFile(suffix='.pth', delete=False)
        torch.save({k: v for k, v in ckpt.items() if isinstance(v, (dict, torch.Tensor))}, tmp.name)
        src = tmp.name
    state_dict, container = extract_state_dict(read_checkpoint(src), args.src)
    check_family(state_dict, args.family, args.src)
    kwargs = json.loads(args.kwargs)
    classes = [c for c in family_types(args.family) if args.type in (None, c.__name__)]
    candidates = [(c, a) for c in classes for a in ([args.arch] if args.arch else list(c.arch_zoo))]
    errors = []
    for cls, arch in candidates:
        model = cls(arch=arch, **kwargs)
        try:
            out = convert_state_dict(args.family, state_dict, model, args.src, container)
        except CheckpointError as err:
            errors.append(f'{cls.__name__}:{arch}: {err}')
            continue
        out['meta'].update(type=cls.__name__, arch=arch, kwargs=kwargs)
        os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
        torch.save(out, args.dst)
        print_log(f'saved {cls.__name__}(arch={arch!r}) weights to {args.dst}', logger='current')
        return
    raise SystemExit('no arch of family {} fits {}:\n  {}'.format(args.family, args.src, '\n  '.join(errors)))


if __name__ == '__main__':
    main()
