"""Stock mmdet/mmseg configs, from the installed packages, with only the backbone swapped for ours.

What a user writes (see docs/usage.md): ``custom_imports``, ``backbone=dict(_delete_=True, type=..., ...)``,
the neck's / decode heads' ``in_channels`` from ``backbone.out_channels`` and, for mmseg's ResNet-based
UperNet, ``pretrained=None``. Each case builds the whole detector/segmentor from such a file and runs one
``train_step`` (SGD) on a tiny synthetic batch; the loss is finite and every backbone parameter gets a
finite gradient, non-zero in the stem. Backbones keep their family's real widths with one block per
stage; the heads keep the stock settings except proposal/RoI/query counts (step time only).
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import MODELS as ROOT_MODELS

from config_checks import _det_sample, _seg_sample, build_model, shrink_heads_for_step

SIZE = (64, 64)

# type -> (depth-reduced arch with the family's real widths, out_channels for out_indices (0, 1, 2, 3))
BACKBONES = {
    'GCViT': (dict(embed_dims=64, depths=(1, 1, 1, 1), num_heads=(2, 4, 8, 16), mlp_ratio=3.0),
              (64, 128, 256, 512)),
    'TwinsPCPVT': (dict(embed_dims=[64, 128, 320, 512], depths=[1, 1, 1, 1], num_heads=[1, 2, 5, 8],
                        mlp_ratios=[8, 8, 4, 4], sr_ratios=[8, 4, 2, 1]), (64, 128, 320, 512)),
    'TwinsSVT': (dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 2, 2], num_heads=[2, 4, 8, 16],
                      mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1]), (64, 128, 256, 512)),
    'CrossFormer': (dict(embed_dims=64, depths=(1, 1, 1, 1), num_heads=(2, 4, 8, 16)), (64, 128, 256, 512)),
    'XCiT': (dict(embed_dims=128, depth=4, num_heads=4, patch_size=16, tap_blocks=(0, 1, 2, 3)), (128, ) * 4),
    'TransNeXt': (dict(embed_dims=(48, 96, 192, 384), depths=(1, 1, 1, 1), num_heads=(2, 4, 8, 16)),
                  (48, 96, 192, 384)),
}
# backbone arguments beyond type/arch: TransNeXt's position bias is generated for an img_size input
# (800, the authors' detection size, by default); the training size keeps the step cheap.
EXTRA_ARGS = {'TransNeXt': dict(img_size=SIZE[0])}


def _mask_rcnn(backbone, ch):
    return "model = dict(backbone=%r, neck=dict(in_channels=%r))" % (backbone, list(ch))


def _retinanet(backbone, ch):
    # RetinaNet's FPN starts at level 1: without stage 0 in out_indices, no output norm goes unused (DDP)
    backbone = dict(backbone, out_indices=(1, 2, 3))
    return "model = dict(backbone=%r, neck=dict(in_channels=%r, start_level=0))" % (backbone, list(ch[1:]))


def _dino(backbone, ch):
    backbone = dict(backbone, out_indices=(1, 2, 3))
    return "model = dict(backbone=%r, neck=dict(in_channels=%r))" % (backbone, list(ch[1:]))


def _upernet(backbone, ch):
    return ("model = dict(pretrained=None, backbone=%r, decode_head=dict(in_channels=%r), "
            "auxiliary_head=dict(in_channels=%d))" % (backbone, list(ch), ch[2]))


def _segformer(backbone, ch):
    return "model = dict(backbone=%r, decode_head=dict(in_channels=%r))" % (backbone, list(ch))


# stock config -> what the user writes besides _base_ and custom_imports
STOCK = {
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py': _mask_rcnn,
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py': _retinanet,
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py': _dino,
    'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py': _upernet,
    'mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py': _segformer,
}


def user_config(tmp_path, stock: str, type_name: str) -> Config:
    """Write the user's config file (stock base + the swap) and load it as mmengine would."""
    arch, channels = BACKBONES[type_name]
    backbone = dict(_delete_=True, type=type_name, arch=arch, **EXTRA_ARGS.get(type_name, {}))
    text = (f"_base_ = [{stock!r}]\n"
            "custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
            f"{STOCK[stock](backbone, channels)}\n")
    path = tmp_path / 'user_config.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def synthetic_batch(scope: str, with_mask: bool):
    h, w = SIZE
    img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
    if scope == 'mmdet':
        return dict(inputs=[img], data_samples=[_det_sample(h, w, with_mask)])
    # two images: UperNet's PPM pools to 1x1 and BatchNorm cannot train on one value per channel
    return dict(inputs=[img, img.flip(-1)], data_samples=[_seg_sample(h, w), _seg_sample(h, w)])


def train_step(cfg: Config):
    """Build ``cfg.model`` and run one SGD ``train_step``; returns (model, log_vars, backbone grads)."""
    shrink_heads_for_step(cfg)
    model = build_model(cfg)
    scope = cfg.default_scope
    if getattr(model.data_preprocessor, 'size', None) is not None:
        model.data_preprocessor.size = SIZE  # the mmseg configs pad to their 512x512 crop
    grads = {}
    for name, param in model.backbone.named_parameters():
        param.register_post_accumulate_grad_hook(lambda p, name=name: grads.__setitem__(name, p.grad.clone()))
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    model.train()
    log_vars = model.train_step(synthetic_batch(scope, bool(getattr(model, 'with_mask', False))), optim_wrapper)
    return model, log_vars, grads


@pytest.mark.parametrize('type_name', sorted(BACKBONES))
@pytest.mark.parametrize('stock', sorted(STOCK))
def test_stock_config_with_swapped_backbone_trains(tmp_path, stock, type_name):
    cfg = user_config(tmp_path, stock, type_name)
    model, log_vars, grads = train_step(cfg)
    assert type(model.backbone).__name__ == type_name
    assert model.backbone.out_channels == tuple(BACKBONES[type_name][1][i] for i in model.backbone.out_indices)
    assert torch.isfinite(torch.as_tensor(log_vars['loss']).detach()), log_vars
    params = dict(model.backbone.named_parameters())
    assert set(grads) == set(params), f'no gradient for backbone parameters {sorted(set(params) - set(grads))[:5]}'
    assert all(torch.isfinite(g).all() for g in grads.values())
    stem = next(iter(params))  # the first parameter: reached only through every stage
    assert grads[stem].abs().sum() > 0, f'zero gradient at the stem ({stem})'


def test_stock_config_errors_name_what_to_write(tmp_path):
    """The two things a swap must not forget fail at build time, saying what to write."""
    path = tmp_path / 'no_delete.py'  # without _delete_=True, ResNet's arguments reach our backbone
    path.write_text("_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']\n"
                    "custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
                    "model = dict(backbone=dict(type='TwinsSVT', arch='small'))\n")
    with pytest.raises(TypeError, match=r"TwinsSVT got an unexpected keyword argument '\w+'.*_delete_=True"):
        build_model(Config.fromfile(str(path)))
    path = tmp_path / 'resnet_pretrained.py'  # mmseg's UperNet sets model.pretrained for its ResNet
    path.write_text("_base_ = ['mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py']\n"
                    "custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
                    "model = dict(backbone=dict(_delete_=True, type='TwinsSVT', arch='small'))\n")
    with pytest.raises(ValueError, match=r"TwinsSVT: pretrained='open-mmlab://resnet50_v1c' names a checkpoint of "
                                         r"the open-mmlab:// model zoo.*set model.pretrained=None"):
        build_model(Config.fromfile(str(path)))


def test_segmentor_pretrained_reaches_the_backbone(tmp_path):
    """mmseg's EncoderDecoder hands ``model.pretrained`` to the backbone (the mmseg 0.x way): it loads."""
    arch, channels = BACKBONES['TwinsPCPVT']
    source = ROOT_MODELS.build(dict(type='TwinsPCPVT', arch=arch))
    source.init_weights()
    checkpoint = str(tmp_path / 'pcpvt.pth')
    torch.save(source.state_dict(), checkpoint)
    path = tmp_path / 'user_config.py'
    path.write_text("_base_ = ['mmseg::segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py']\n"
                    "custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)\n"
                    f"model = dict(pretrained={checkpoint!r}, backbone=dict(_delete_=True, type='TwinsPCPVT', "
                    f"arch={arch!r}), decode_head=dict(in_channels={list(channels)!r}))\n")
    with pytest.warns(FutureWarning, match='TwinsPCPVT: pretrained= is deprecated'):
        model = build_model(Config.fromfile(str(path)))  # builds and calls init_weights
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
