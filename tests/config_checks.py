"""Build a whole detector/segmentor from a config and run one loss step and one predict step."""
import copy
import os

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_PARSED = {}


def load_config(path: str) -> Config:
    """``Config.fromfile`` of ``path`` (relative to the root), parsed once per file version and returned as a
    fresh copy: parsing an mmdet/mmseg config with its bases takes 0.5-2 s, a copy a few ms, and the suites load
    the same configs in several tests."""
    path = os.path.join(ROOT, path) if not os.path.isabs(path) else path
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _PARSED:
        _PARSED[key] = Config.fromfile(path)
    return copy.deepcopy(_PARSED[key])


def build_model(cfg: Config):
    """Build ``cfg.model`` in the config's default scope (init_weights is not called: no download)."""
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    model_cfg = cfg.model.copy()
    _drop_pretrained(model_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    model.init_weights()  # e.g. DINO's level_embed is uninitialised memory until init_weights
    return model


def build_on_meta(cfg: Config):
    """Build ``cfg.model`` on the meta device (no memory, no init): enough to count and check wiring."""
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    else:
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    model_cfg = cfg.model.copy()
    _drop_pretrained(model_cfg)
    with DefaultScope.overwrite_default_scope(scope), torch.device('meta'):
        return MODELS.build(model_cfg)


def metafile_entry(path: str) -> dict:
    """The entry of ``configs/<family>/metafile.yml`` whose Config is ``path`` (relative to the root)."""
    import yaml
    family = path.split('/')[1]
    with open(os.path.join(ROOT, 'configs', family, 'metafile.yml')) as f:
        models = yaml.safe_load(f)['Models']
    entries = [m for m in models if m['Config'] == path]
    assert len(entries) == 1, f'{path}: {len(entries)} metafile entries'
    return entries[0]


def _drop_pretrained(model_cfg) -> None:
    backbone = model_cfg.get('backbone', {})
    if isinstance(backbone.get('init_cfg'), dict) and backbone['init_cfg'].get('type') == 'Pretrained':
        backbone['init_cfg'] = None


def shrink_heads_for_step(cfg: Config) -> None:
    """Keep a detector's loss/predict step small on a 64x96 CPU input: DINO's top-k keeps 64 queries (such
    an image has fewer encoder tokens than the configs' 900), and the two-stage detectors keep fewer
    proposals and sample fewer RoIs (their RoI heads dominate the step on CPU)."""
    model = cfg.model
    if model.type == 'DINO':
        model.num_queries = 64
    elif model.type in ('MaskRCNN', 'CascadeRCNN'):
        model.train_cfg.rpn_proposal.max_per_img = 64
        model.test_cfg.rpn.max_per_img = 32
        rcnn = model.train_cfg.rcnn
        for stage in (rcnn if isinstance(rcnn, (list, tuple)) else [rcnn]):
            stage.sampler.num = 32


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _det_sample(h: int, w: int, with_mask: bool):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    sample = DetDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                             batch_input_shape=(h, w), img_id=0, flip=False))
    inst = InstanceData()
    inst.bboxes = torch.tensor([[4.0, 6.0, w * 0.6, h * 0.7], [w * 0.3, h * 0.2, w - 3.0, h - 5.0]])
    inst.labels = torch.tensor([1, 3])
    if with_mask:
        masks = np.zeros((2, h, w), dtype=np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(inst.bboxes.int().tolist()):
            masks[i, y1:y2, x1:x2] = 1
        inst.masks = BitmapMasks(masks, h, w)
    sample.gt_instances = inst
    sample.ignored_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return sample


def _seg_sample(h: int, w: int):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), scale_factor=(1.0, 1.0),
                             flip=False, reduce_zero_label=True))
    label = torch.zeros(1, h, w, dtype=torch.long)
    label[:, : h // 2] = 3
    label[:, :, : w // 3] = 7
    sample.gt_sem_seg = PixelData(data=label)
    return sample


def loss_and_predict(cfg: Config, model=None, size=(96, 128)):
    """One backward pass on the summed losses and one predict call; returns (losses, predictions)."""
    scope = cfg.get('default_scope', 'mmdet')
    model = model if model is not None else build_model(cfg)
    h, w = size
    img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
    if scope == 'mmdet':
        with_mask = bool(model.with_mask) if hasattr(model, 'with_mask') else False
        samples = [_det_sample(h, w, with_mask)]
    else:
        samples = [_seg_sample(h, w)]
        if getattr(model.data_preprocessor, 'size', None) is not None:
            model.data_preprocessor.size = (h, w)  # the configs pad to their 512x512 crop; keep the test small
    model.train()
    # Segmentors train on two images: UperNet's PPM pools to 1x1, and BatchNorm cannot train on one value.
    train_imgs, train_samples = ([img], samples) if scope == 'mmdet' else ([img, img.flip(-1)], samples * 2)
    data = model.data_preprocessor(dict(inputs=train_imgs, data_samples=train_samples), True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total), f'non-finite loss {total}'
    total.backward()
    model.eval()
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[s.clone() for s in samples]), False)
    with torch.no_grad():
        preds = model(**data, mode='predict')
    assert len(preds) == 1
    return losses, preds
