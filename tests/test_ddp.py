"""Every backbone type trains under 2-process gloo DDP with ``find_unused_parameters=False``.

DDP needs every trainable parameter to get a gradient in every iteration, and the trainable set to be
fixed before it wraps the model (``frozen_stages`` applied at build time, not in ``train()``, which
mmengine calls after wrapping). A plain torch DDP loop on tiny archs and inputs keeps this cheap; the
full mmengine path is covered by tests/test_resume.py.
"""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from backbone_checks import TINY_ARCHS, projection_loss

CONFIGS = [dict(out_indices=(0, 1, 2)), dict(out_indices=(1, 2, 3)), dict(frozen_stages=1)]
ITERATIONS = 3
WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _train(rank: int, type_name: str, cfg: dict) -> None:
    from mmengine.registry import MODELS
    from torch.nn.parallel import DistributedDataParallel

    import mmvit_backbones  # noqa: F401  (registers the backbones in the spawned process)
    torch.manual_seed(0)  # the same initialisation on both ranks (DDP broadcasts rank 0's anyway)
    model = MODELS.build(dict(type=type_name, arch=TINY_ARCHS[type_name], drop_path_rate=0.1, **cfg))
    ddp = DistributedDataParallel(model, find_unused_parameters=False)
    ddp.train()  # what mmengine does after wrapping
    optim = torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.01)
    for it in range(ITERATIONS):
        torch.manual_seed(1000 + 10 * it + rank)  # different data per rank
        loss = projection_loss(ddp(torch.randn(2, 3, 64, 64)))
        optim.zero_grad()
        loss.backward()
        optim.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(WORLD_SIZE)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), f'{type_name} {cfg}: ranks diverged'


def _worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=WORLD_SIZE)
    try:
        for type_name in sorted(TINY_ARCHS):
            for cfg in CONFIGS:
                try:
                    _train(rank, type_name, cfg)
                except Exception as error:
                    raise RuntimeError(f'DDP training of {type_name} with {cfg} failed: {error}') from error
        dist.barrier()  # neither rank tears gloo down while the other still talks to it (once: a SIGABRT at exit)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gloo_without_find_unused_parameters():
    mp.spawn(_worker, args=(_free_port(), ), nprocs=WORLD_SIZE, join=True)
