"""``pretrained=True`` and ``mmvit://<name>``: the default release of each name, from the metafiles' ``Backbones``
lists; downloaded through a loopback server (the release's URL patched to it), from the cache afterwards, and
an offline message that names the release, the URL and the cache file."""
import dataclasses
import hashlib
import os.path as osp
import re
import socket
import time

import pytest
import torch
import yaml
from mmengine.registry import MODELS
from safetensors.torch import save_file

from mmvit_backbones import create_backbone, list_backbones
from mmvit_backbones.checkpoint import CheckpointDownloadError, CheckpointError, cached_path, releases
from mmvit_backbones.checkpoint.files import HASH_REGEX
from mmvit_backbones.checkpoint.zoo import model_index_path
from seeded_weights import load_key_fixture, seeded_state_dict
from test_checkpoint_remote import _Server

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
NAME = 'xcit-nano-12-p16'  # the smallest backbone that has a default release


def _metafiles():
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    for path in index['Import']:
        with open(osp.join(ROOT, path)) as f:
            yield path.split('/')[1], yaml.safe_load(f)


def test_metafile_releases_name_real_backbones_and_direct_urls():
    names = set(list_backbones())
    found = releases()
    assert model_index_path().endswith('model-index.yml')
    per_family = {}
    for family, meta in _metafiles():
        for entry in meta['Backbones']:
            name = entry['Name']
            assert name in names, f'{family} metafile: Backbones entry {name!r} is not a create_backbone name'
            assert name.startswith(family), (family, name)
            url = entry.get('Weights')
            assert url or entry.get('Weights (manual download)'), f'{name}: neither Weights nor a manual page'
            if url:
                assert url.startswith('https://') and found[name].url == url, name
                per_family.setdefault(family, []).append(name)
            if entry.get('Check Hash'):  # the file name carries the sha256 prefix the loader checks
                assert HASH_REGEX.search(osp.basename(url)), (name, url)
            for alternative in entry.get('Alternatives', []):
                assert alternative.startswith('https://'), (name, alternative)
    # every family but CrossFormer (Google Drive / Baidu pages only) has a direct download for every listed arch
    assert sorted(per_family) == ['gcvit', 'transnext', 'twins', 'xcit']
    assert list_backbones(pretrained=True) == [n for n in list_backbones() if n in found and found[n].url]
    assert {n.split('-')[0] for n in list_backbones(pretrained=True)} == {'gcvit', 'twins', 'xcit', 'transnext'}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home'


@pytest.fixture
def served_release(tmp_path, monkeypatch):
    """The release of NAME pointed at a loopback server holding a timm-layout safetensors file of it."""
    keys = load_key_fixture('xcit', 'timm_xcit_nano_12_p16_224_keys.json')['keys']
    weights = seeded_state_dict(keys)
    path = tmp_path / 'xcit_nano.safetensors'
    save_file(weights, str(path))
    body = path.read_bytes()
    server = _Server({'/timm/xcit_nano_12_p16_384.fb_dist_in1k/resolve/main/model.safetensors': body})
    url = server.url + '/timm/xcit_nano_12_p16_384.fb_dist_in1k/resolve/main/model.safetensors'
    digest = hashlib.sha256(body).hexdigest()
    release = dataclasses.replace(releases()[NAME], url=url, sha256=digest, check_hash=False)
    monkeypatch.setitem(releases(), NAME, release)
    yield server, url, weights
    server.stop()


def test_pretrained_true_downloads_the_default_release_once(torch_home, served_release):
    server, url, weights = served_release
    model = create_backbone(NAME, pretrained=True, out_indices=(2, ))
    assert model.init_cfg == dict(type='Pretrained', checkpoint=f'mmvit://{NAME}')
    torch.testing.assert_close(model.state_dict()['blocks.0.attn.qkv.weight'], weights['blocks.0.attn.qkv.weight'])
    cache = torch_home / 'hub' / 'checkpoints' / 'timm_xcit_nano_12_p16_384.fb_dist_in1k_model.safetensors'
    assert cached_path(url) == str(cache) and cache.is_file()
    # the same release through init_cfg, from the cache: no second request
    again = MODELS.build(dict(type='XCiT', arch='nano-12-p16', out_indices=(2, ),
                              init_cfg=dict(type='Pretrained', checkpoint=f'mmvit://{NAME}')))
    again.init_weights()
    assert len(server.requests) == 1
    for key, value in model.state_dict().items():
        if not key.startswith('pyramid.'):  # the pyramid is not in an ImageNet file: random init
            assert torch.equal(again.state_dict()[key], value), key


def test_release_hash_is_checked(torch_home, served_release, monkeypatch):
    release = dataclasses.replace(releases()[NAME], sha256='0' * 64)
    monkeypatch.setitem(releases(), NAME, release)
    with pytest.raises(CheckpointError, match='expected one starting with 0000000000'):
        create_backbone(NAME, pretrained=True)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_offline_names_the_release_url_and_cache_file(torch_home, monkeypatch):
    url = f'http://127.0.0.1:{_closed_port()}/xcit/xcit_nano_12_p16_384_dist.pth'
    monkeypatch.setitem(releases(), NAME, dataclasses.replace(releases()[NAME], url=url))
    start = time.monotonic()
    with pytest.raises(CheckpointDownloadError) as err:
        create_backbone(NAME, pretrained=True)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert f'mmvit://{NAME}' in message and url in message
    assert str(torch_home / 'hub' / 'checkpoints' / 'xcit_nano_12_p16_384_dist.pth') in message


def test_names_without_a_direct_download_say_where_to_get_it():
    with pytest.raises(CheckpointError, match=r'mmvit://crossformer-small: the authors publish no direct download.*'
                                              r'drive\.google\.com.*give its path instead'):
        create_backbone('crossformer-small', pretrained=True)
    with pytest.raises(CheckpointError, match="'crossformer-tiny' has no default release.*names with one: gcvit-base"):
        create_backbone('crossformer-tiny', pretrained=True)
    with pytest.raises(CheckpointError, match="'gcvit-huge' has no default release"):
        MODELS.build(dict(type='GCViT', arch='tiny', init_cfg=dict(type='Pretrained',
                                                                   checkpoint='mmvit://gcvit-huge'))).init_weights()
    assert create_backbone(NAME, pretrained=False).init_cfg is None


def test_cache_names_of_generic_hub_files_do_not_clash():
    a = cached_path('https://huggingface.co/timm/twins_svt_small.in1k/resolve/main/model.safetensors')
    b = cached_path('https://huggingface.co/timm/twins_svt_base.in1k/resolve/main/model.safetensors')
    assert osp.basename(a) == 'timm_twins_svt_small.in1k_model.safetensors' and a != b
    assert osp.basename(cached_path('https://dl.fbaipublicfiles.com/xcit/xcit_nano_12_p16_384_dist.pth')) == \
        'xcit_nano_12_p16_384_dist.pth'
    assert re.search(r'-e638c41c\.pth$', cached_path(
        'https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/twins/pcpvt_small_20220308-e638c41c.pth'))
