"""Checkpoints by URL (a loopback HTTP server), torch hub's cache, offline errors, hashes, bad paths."""
import hashlib
import http.server
import os.path as osp
import socket
import threading
import time

import pytest
import torch
from mmengine.registry import MODELS

from mmvit_backbones.checkpoint import CheckpointDownloadError, CheckpointError, cached_path, read_checkpoint

ARCH = dict(embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4))  # a small TransNeXt


class _Server:
    """``http.server`` on 127.0.0.1 (ephemeral port) in a thread, serving ``files`` and counting requests."""

    def __init__(self, files: dict):
        self.files, self.requests, self.default_timeouts, self.release = files, [], [], threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                outer.default_timeouts.append(socket.getdefaulttimeout())  # while the client waits for the body
                if self.path == '/stalled.pth':  # half a body, then silence until the test ends
                    self.send_response(200)
                    self.send_header('Content-Length', '1000')
                    self.end_headers()
                    self.wfile.write(b'PK\x03\x04' * 10)
                    self.wfile.flush()
                    outer.release.wait(30)
                    return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, 'no such checkpoint')
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home'


@pytest.fixture
def served(tmp_path):
    """A TransNeXt checkpoint (authors' ImageNet container) on a loopback server: (server, bytes, weights)."""
    weights = MODELS.build(dict(type='TransNeXt', arch=ARCH)).state_dict()
    path = tmp_path / 'src.pth'
    torch.save({'model': weights, 'epoch': 300}, str(path))
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    server = _Server({'/transnext_small.pth': body, f'/transnext_small-{digest[:8]}.pth': body,
                      '/transnext_small-deadbeef.pth': body})
    yield server, digest, weights
    server.stop()


def _build(url, **init):
    return MODELS.build(dict(type='TransNeXt', arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=url, **init)))


def test_url_in_init_cfg_downloads_once_into_torch_hub_cache(torch_home, served):
    server, _, weights = served
    url = server.url + '/transnext_small.pth'
    model = _build(url)
    model.init_weights()
    torch.testing.assert_close(model.state_dict(), weights)
    cache = torch_home / 'hub' / 'checkpoints' / 'transnext_small.pth'
    assert cached_path(url) == str(cache) and cache.is_file()
    assert server.requests == ['/transnext_small.pth']
    again = _build(url)
    again.init_weights()  # from the cache: no second request
    assert server.requests == ['/transnext_small.pth']
    torch.testing.assert_close(again.state_dict(), weights)
    server.stop()  # and without the server at all
    _build(url).init_weights()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_unreachable_url_fails_fast_naming_url_and_cache_file(torch_home):
    url = f'http://127.0.0.1:{_closed_port()}/releases/transnext_tiny_224_1k.pth'
    start = time.monotonic()
    with pytest.raises(CheckpointDownloadError) as err:
        _build(url).init_weights()
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert url in message and str(torch_home / 'hub' / 'checkpoints' / 'transnext_tiny_224_1k.pth') in message
    assert 'weights_only' not in message


def test_http_error_names_status_and_cache_file(torch_home, served):
    server, _, _ = served
    with pytest.raises(CheckpointDownloadError, match=r'HTTP 404.*place it at .*missing\.pth'):
        read_checkpoint(server.url + '/missing.pth')
    assert not (torch_home / 'hub' / 'checkpoints' / 'missing.pth').exists()


def test_timeout_is_the_downloads_own_not_the_process_default(torch_home, served, monkeypatch):
    """A stalled body fails after $MMVIT_DOWNLOAD_TIMEOUT, leaving no partial file; other threads' sockets (here
    the server's) see the process default timeout unchanged during the download."""
    server, _, _ = served
    monkeypatch.setenv('MMVIT_DOWNLOAD_TIMEOUT', '0.5')
    default = socket.getdefaulttimeout()
    with pytest.raises(CheckpointDownloadError, match=r'no answer within 0\.5 s .*place it at .*stalled\.pth'):
        read_checkpoint(server.url + '/stalled.pth')
    assert server.default_timeouts == [default] and socket.getdefaulttimeout() == default
    assert list((torch_home / 'hub' / 'checkpoints').iterdir()) == []


def test_sha256_in_init_cfg_and_hub_file_name_convention(torch_home, served):
    server, digest, weights = served
    _build(server.url + '/transnext_small.pth', sha256=digest).init_weights()
    _build(server.url + f'/transnext_small-{digest[:8]}.pth', check_hash=True).init_weights()
    with pytest.raises(CheckpointError, match=f'has sha256 {digest}, expected one starting with deadbeef'):
        _build(server.url + '/transnext_small-deadbeef.pth', check_hash=True).init_weights()
    assert not (torch_home / 'hub' / 'checkpoints' / 'transnext_small-deadbeef.pth').exists()  # removed again
    with pytest.raises(CheckpointError, match='expected one starting with 0000000000'):  # a cached file is checked too
        _build(server.url + '/transnext_small.pth', sha256='0' * 64).init_weights()


def test_directory_and_text_file_say_what_the_path_is(tmp_path):
    with pytest.raises(CheckpointError, match='is a directory, not a checkpoint file') as err:
        _build(str(tmp_path)).init_weights()
    assert 'weights_only' not in str(err.value)
    text = tmp_path / 'notes.txt'
    text.write_text('model: transnext_tiny\nlr: 0.001\n')
    with pytest.raises(CheckpointError, match=r'is not a PyTorch checkpoint \(a text file') as err:
        _build(str(text)).init_weights()
    assert 'weights_only' not in str(err.value)
    truncated = tmp_path / 'truncated.pth'
    torch.save({'a': torch.ones(100)}, str(truncated))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(CheckpointError, match='truncated, corrupt') as err:
        read_checkpoint(str(truncated))
    assert 'weights_only' not in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"'.*nothing\.pth' does not exist"):
        read_checkpoint(osp.join(str(tmp_path), 'nothing.pth'))
