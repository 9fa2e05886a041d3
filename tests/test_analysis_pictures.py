"""The ERF and attention-map tools write non-empty PNGs of the expected size for every family, and
the attention capture neither changes the features nor loses probability mass."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.registry import MODELS
from PIL import Image

from mmvit_backbones.analysis.attention_map import attention_map, record_sdpa
from mmvit_backbones.analysis.erf import effective_receptive_field, erf_display, load_images
from backbone_checks import TINY_ARCHS  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DPI = 40
# as these pictures were checked: two blocks in GC ViT's second stage, and two XCiT heads (so the channel
# attention map is block-diagonal, asserted below)
ARCHS = dict(TINY_ARCHS, GCViT=dict(TINY_ARCHS['GCViT'], depths=(2, 2, 1, 1)),
             XCiT=dict(TINY_ARCHS['XCiT'], num_heads=2))


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_size(path):
    assert osp.getsize(path) > 1000, f'{path} is (nearly) empty'
    with Image.open(path) as im:
        assert im.format == 'PNG'
        return im.size


@pytest.mark.parametrize('type_name', list(ARCHS))
def test_picture_tools_write_pngs(type_name, tmp_path, capsys):
    spec = f'{type_name}:{json.dumps(ARCHS[type_name])}'
    erf_png = str(tmp_path / 'erf.png')
    _tool('erf').main([spec, '--num-images', '2', '--size', '64', '--out', erf_png, '--dpi', str(DPI)])
    assert _png_size(erf_png) == (round(4.2 * DPI), round(3.6 * DPI))
    attn_png = str(tmp_path / 'attn.png')
    block = 0 if type_name == 'XCiT' else 1 if ARCHS[type_name].get('depths', (1, ))[0] > 1 else 0
    _tool('attention_map').main([spec, '--stage', '0', '--block', str(block), '--size', '64', '--out', attn_png,
                                 '--dpi', str(DPI)])
    expected = (4.6, 4.0) if type_name == 'XCiT' else (8.4, 3.6)
    assert _png_size(attn_png) == (round(expected[0] * DPI), round(expected[1] * DPI))
    assert 'saved to' in capsys.readouterr().out


@pytest.mark.parametrize('type_name', list(ARCHS))
def test_attention_capture_is_exact(type_name):
    model = MODELS.build(dict(type=type_name, arch=ARCHS[type_name])).eval()
    model.init_weights()
    image = load_images(None, 1, 96)  # stage 0 is 24 x 24: one GC ViT window, no zero padding among the keys
    with torch.no_grad():
        plain = model(image)
        with record_sdpa() as recorder:
            recorder.active = True  # every SDPA call written out: the features must not change
            recorded = model(image)
    for a, b in zip(plain, recorded):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    result = attention_map(model, image, 0, 0)
    data = np.asarray(result['map'])
    if type_name == 'XCiT':  # per head a row-stochastic d x d block on the diagonal
        heads = ARCHS['XCiT']['num_heads']
        assert data.shape == (16, 16)
        np.testing.assert_allclose(data.sum(1), np.ones(16), rtol=1e-5)
        assert data[:8, 8:].sum() == 0 and heads == 2
    else:  # a probability distribution over the stage's map
        assert data.shape == (24, 24) and (data >= 0).all()
        assert data.sum() == pytest.approx(1.0, abs=1e-4)


def test_erf_grows_with_depth():
    model = MODELS.build(dict(type='TwinsPCPVT', arch=ARCHS['TwinsPCPVT'])).eval()
    model.init_weights()
    images = load_images(None, 2, 64)
    first, last = (effective_receptive_field(model, images, s) for s in (0, 3))
    # stage 1 (stride 4, local patch + PEG + sub-sampled attention) vs stage 4: more pixels contribute later
    assert (erf_display(last) > 0.5).sum() > (erf_display(first) > 0.5).sum()
    assert first.shape == (64, 64) and first.max() > 0
